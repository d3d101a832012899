# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root of the project's pytest tree: pytest puts this directory on sys.path, so every test imports the lab
table as ``from labs import lab`` (tests/labs.py)."""
