"""Training: BLIP's objectives, the pre-training loop that makes the built-in model, and fine-tuning."""
