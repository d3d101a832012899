# Sourced by the scripts in this directory: paths, the virtualenv, and the collection tree Ansible needs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
BUILD="$ROOT/.build"
# Ansible finds a collection only at ansible_collections/<namespace>/<name>; a symlink serves
# ansible-playbook and pytest, while ansible-test gets a real copy (it rejects symlinked roots).
COLLECTIONS="$BUILD/collections"
LINK="$COLLECTIONS/ansible_collections/freebsd_ha/storage"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS"
export PYTHONPATH="$COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"

link_collection() {
  mkdir -p "$(dirname "$LINK")"
  [ -L "$LINK" ] || ln -sfn "$ROOT" "$LINK"
}

copy_collection() {
  # A clean copy for ansible-test and ansible-galaxy: only what git tracks plus new files not ignored.
  local dest="$BUILD/copy/ansible_collections/freebsd_ha/storage"
  rm -rf "$BUILD/copy" && mkdir -p "$dest"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dest" 2>/dev/null || true)
  (cd "$dest" && git init -q && git add -A >/dev/null)
  echo "$dest"
}

ansible_test_pip_bootstrap() {
  # ansible-test bootstraps pip in each of its venvs with a script from a host we cannot reach; serve our own.
  local pip_version cache bootstrap
  pip_version=$(python -c "from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version='3.11'))['pip'])")
  cache="$HOME/.ansible/test/cache"
  bootstrap="$cache/get_pip_${pip_version//./_}.py"
  if [ ! -f "$bootstrap" ]; then
    mkdir -p "$cache"
    pip download -q --no-deps --only-binary :all: -d "$cache" "pip==$pip_version"
    cp "$ROOT/scripts/ansible-test-pip-bootstrap.py" "$bootstrap"
  fi
}
