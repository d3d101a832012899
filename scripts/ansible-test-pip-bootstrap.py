# Stand-in for ansible-test's get-pip bootstrap script, which it downloads from ci-files.testing.ansible.com,
# a host this machine cannot reach. It runs pip from the official pip wheel (fetched from PyPI next to it)
# the way get-pip does: `install --upgrade --force-reinstall <packages>`.
import glob
import os
import runpy
import sys

wheel = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-*-py3-none-any.whl")))[-1]
sys.path.insert(0, wheel)
# get-pip's own flags say which extra packages to skip; ours installs only what is named.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", "--upgrade", "--force-reinstall", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
