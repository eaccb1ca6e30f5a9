"""The bundle's executable: the same ``blip-assistant`` command as the installed console script, so the
tray app, ``trigger``, ``describe`` and every option work the same from a bundle."""

import os
import sys

# transformers would otherwise swap layers for "hub kernels", code fetched from the Hugging Face hub: the
# assistant opens no connection the user did not ask for, and the bundle runs the code it ships.
os.environ.setdefault("USE_HUB_KERNELS", "0")

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main())
