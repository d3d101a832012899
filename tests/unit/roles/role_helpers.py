# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role test helpers: render a role template as ansible.builtin.template does, read and apply argument specs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[3]
ROLES = ROOT / "roles"
ANSIBLE_MANAGED = "Ansible managed: do not edit"


def render_template(role, template, variables):
    """Return the text ansible.builtin.template would write for roles/<role>/templates/<template>."""
    source = ROLES / role / "templates" / template
    templar = Templar(loader=DataLoader(), variables={"ansible_managed": ANSIBLE_MANAGED, **variables})
    # The template action's defaults: trim_blocks on, lstrip_blocks off, "\n" line ends, backslashes kept.
    overrides = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}
    return templar.template(trust_as_template(source.read_text()), escape_backslashes=False, overrides=overrides)


def entry_point(role, name="main"):
    """Return one entry point of roles/<role>/meta/argument_specs.yml."""
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][name]


def role_defaults(role):
    """Return roles/<role>/defaults/main.yml as a dict."""
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}


def spec_errors(role, variables):
    """Return the messages role argument validation gives for variables (defaults filled in first, as Ansible does)."""
    options = entry_point(role)["options"]
    values = {**role_defaults(role), **variables}
    result = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True)
    return result.error_messages


def walk_options(options, prefix=""):
    """Yield (dotted name, option spec) for every option and suboption, lists marked with []."""
    for name, spec in options.items():
        path = f"{prefix}{name}"
        yield path, spec
        if spec.get("options"):
            marker = "[]" if spec.get("type") == "list" else ""
            yield from walk_options(spec["options"], f"{path}{marker}.")


def role_vars(role):
    """Return roles/<role>/vars/main.yml as a dict (empty when the role has none)."""
    path = ROLES / role / "vars" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def trusted(value):
    """Mark strings read with yaml.safe_load as templates, as Ansible's own loader does for role files."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def _as_list(value):
    return value if isinstance(value, list) else [value]


def failed_asserts(role, tasks_file, variables, only=""):
    """Return [(task name, fail_msg)], one per failing loop item, of the assert tasks in roles/<role>/tasks/<file>.

    Evaluates each task's loop (with its index_var), `vars`, `when` and `that` with Ansible's templar over the
    role's defaults and vars plus `variables`, as a play would (extra variables on top); registered results a
    task refers to are given in `variables`; set_fact tasks without a loop add their facts on the way. With
    `only`, just the assert tasks whose name contains it.
    """
    tasks = yaml.safe_load((ROLES / role / "tasks" / tasks_file).read_text())
    scope = {"ansible_check_mode": False, **role_defaults(role), **trusted(role_vars(role)), **variables}
    failures = []
    for task in tasks:
        facts = task.get("ansible.builtin.set_fact")
        if facts is not None and "loop" not in task:
            templar = Templar(loader=DataLoader(), variables=scope)
            scope = {**scope, **{name: templar.template(trusted(value)) for name, value in facts.items()}}
        check = task.get("ansible.builtin.assert")
        if check is None or only not in task["name"]:
            continue
        loop = task.get("loop")
        items = Templar(loader=DataLoader(), variables=scope).template(trusted(loop)) if loop is not None else [None]
        index_var = task.get("loop_control", {}).get("index_var")
        for index, item in enumerate(items):
            local = {"item": item, **({index_var: index} if index_var else {}), **trusted(task.get("vars", {}))}
            templar = Templar(loader=DataLoader(), variables={**scope, **local})
            if not all(templar.evaluate_conditional(trusted(cond)) for cond in _as_list(task.get("when", []))):
                continue
            if not all(templar.evaluate_conditional(trusted(cond)) for cond in _as_list(check["that"])):
                failures.append((task["name"], templar.template(trusted(check["fail_msg"]))))
    return failures


def doc_block(role, kind, name):
    """The text of the YAML block after `<!-- kind: name -->` in docs/role_<role>.md (kind: example, rendered)."""
    page = ROOT / "docs" / f"role_{role}.md"
    match = re.search(rf"<!-- {kind}: {re.escape(name)} -->\s*```yaml\n(.*?)```", page.read_text(), re.S)
    assert match, f"{page.name} has no {kind} block '{name}'"
    return match.group(1)


def doc_example(role, name):
    """The variables of an example block of docs/role_<role>.md."""
    return yaml.safe_load(doc_block(role, "example", name))
