# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills only: SIGKILL ansible-playbook right after the Nth task result that changed something.

A kill at a chosen step is what an operator's lost ssh session or a controller crash does, and unlike a kill
after a delay it lands on the same step on a loaded machine. The step that was last reported is written to
FBSD_HA_DRILL_KILL_LOG so the drill knows whether the run was cut short or ran to its end.
"""

from __future__ import annotations

import json
import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kill_after_change
type: aggregate
short_description: Kill ansible-playbook after the Nth changed task result (runbook drills)
description: Reads FBSD_HA_DRILL_KILL_AFTER (N) and FBSD_HA_DRILL_KILL_LOG (a path it writes the kill to).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_after_change"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.limit = int(os.environ.get("FBSD_HA_DRILL_KILL_AFTER", "0"))
        self.log = os.environ.get("FBSD_HA_DRILL_KILL_LOG", "")
        self.changed = 0

    def v2_runner_on_ok(self, result):
        if not self.limit or not result._result.get("changed"):
            return
        self.changed += 1
        if self.changed < self.limit:
            return
        if self.log:
            with open(self.log, "w", encoding="utf-8") as handle:
                json.dump({"killed_after": result._task.get_name(), "host": result._host.get_name()}, handle)
        os.kill(os.getpid(), signal.SIGKILL)
