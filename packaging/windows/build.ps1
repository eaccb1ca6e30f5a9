# The Windows application: the one-folder bundle and its Inno Setup installer.
# NOT RUN on the project's Linux machine; written to run unchanged on a Windows CI runner
# (windows-latest has Python and Inno Setup 6):
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#
# Makes dist\blip-assistant\blip-assistant.exe and dist\blip-assistant-VERSION-setup.exe.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

if (-not (Test-Path .venv\Scripts\python.exe)) { py -3.11 -m venv .venv }
$py = ".venv\Scripts\python.exe"
& $py -m pip install --quiet --disable-pip-version-check "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
& $py -m pip install --quiet --disable-pip-version-check -e ".[package]"
$version = (& $py packaging\bundle_version.py).Trim()

# The icon for the executable and the installer, from the PNGs in resources\icons.
& $py -c "from PIL import Image; im = Image.open('resources/icons/blip-assistant-256.png'); im.save('packaging/windows/blip-assistant.ico', sizes=[(16,16),(32,32),(48,48),(64,64),(128,128),(256,256)])"

$env:OMP_NUM_THREADS = "1"
& $py -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build\pyinstaller packaging\pyinstaller\blip-assistant.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

$iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
if (-not (Test-Path $iscc)) { choco install innosetup --no-progress -y; }
& $iscc "/DAppVersion=$version" packaging\windows\blip-assistant.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Write-Host "installer: dist\blip-assistant-$version-setup.exe"
