"""Runs every peer script whose dependencies are installed; a missing one is reported, not fatal."""
import glob
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
for script in sorted(glob.glob(os.path.join(here, "*_peer.py"))):
    name = os.path.basename(script)
    result = subprocess.run([sys.executable, script], capture_output=True, text=True)
    if result.returncode == 0:
        print(result.stdout.strip())
    else:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"peer {name} not run: {last}")
