"""FreeBSD identity for the fbsd-ha lab's node interpreter (/usr/local/bin/python3.11).

Loaded through PYTHONPATH by the wrapper script only. It replaces os.uname() so that os.uname(),
platform.system()/release()/version()/machine() and everything built on them (Ansible's fact
collectors, ansible.builtin.service's platform dispatch, community.general.sysrc) see
FreeBSD 14.2-RELEASE on amd64. sys.platform stays "linux" on purpose (ctypes, subprocess and the
C library are Linux ones), and pip, ensurepip and venv run with the real identity so that they pick
Linux wheels and paths. FBSD_LAB_REAL_UNAME=1 switches the disguise off for one run.
"""

import os
import sys

_SITE_DIR = "/usr/local/libexec/fbsd-lab/python"
_RELEASE = "14.2-RELEASE"
_VERSION = "FreeBSD 14.2-RELEASE releng/14.2-n269506-c8918d6c7412 GENERIC"
_MACHINE = "amd64"
_REAL_FIRST = ("pip", "ensurepip", "venv", "virtualenv")


def _restore_environment():
    """Remove the wrapper's variables so children of this interpreter get a clean environment."""
    original = os.environ.pop("FBSD_LAB_PYTHONPATH_ORIG", None)
    wrapper = os.environ.pop("FBSD_LAB_PYTHON_WRAPPER", None)
    if original is None:
        return None
    if original:
        os.environ["PYTHONPATH"] = original
    else:
        os.environ.pop("PYTHONPATH", None)
    return wrapper


def _runs_packaging_tool():
    argv = list(getattr(sys, "orig_argv", []))
    for position, argument in enumerate(argv[:-1]):
        if argument == "-m":
            return argv[position + 1].split(".")[0] in _REAL_FIRST
    return False


def _install():
    wrapper = _restore_environment()
    if os.environ.get("FBSD_LAB_REAL_UNAME") == "1" or _runs_packaging_tool():
        return
    real_uname = os.uname

    def uname():
        real = real_uname()
        return os.uname_result(("FreeBSD", real.nodename, _RELEASE, _VERSION, _MACHINE))

    uname.__doc__ = real_uname.__doc__
    os.uname = uname
    if wrapper and os.path.isabs(wrapper) and os.access(wrapper, os.X_OK):
        # Code that re-runs sys.executable (Ansible's respawn, multiprocessing) keeps the identity.
        sys.executable = wrapper


_install()

# Chain to the distribution's sitecustomize (Debian's installs the apport hook), which ours shadows.
_debian = "/etc/python3.11/sitecustomize.py"
if os.path.exists(_debian):
    try:
        with open(_debian, encoding="utf-8") as _stream:
            exec(compile(_stream.read(), _debian, "exec"), {"__name__": "_debian_sitecustomize"})
    except Exception:  # a broken distribution hook must not break the interpreter
        pass
