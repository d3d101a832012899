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
