"""Verify for the lab and freebsd_vms scenarios (pytest-testinfra, one host per parametrized run).

Shell tools (uname, stat) on lab nodes are the Linux ones; what must look like FreeBSD is what
Ansible sees, so identity is checked through Ansible facts, and ZFS through the zfs command.
"""

import pytest

DATASET = "zdata/molecule"
CONFIG = "/usr/local/etc/fbsd-ha/molecule.conf"


@pytest.fixture(scope="module")
def facts(host):
    return host.ansible("ansible.builtin.setup", "gather_subset=min", check=False)["ansible_facts"]


def test_node_reports_freebsd_to_ansible(facts):
    assert (facts["ansible_system"], facts["ansible_os_family"]) == ("FreeBSD", "FreeBSD")


def test_node_reports_freebsd_14(facts):
    assert facts["ansible_distribution_major_version"] == "14"


def test_pool_is_online(host):
    assert host.check_output("zpool list -H -o health zdata") == "ONLINE"


def test_dataset_exists_and_is_mounted(host):
    assert host.check_output(f"zfs get -H -o value mounted {DATASET}") == "yes"


def test_dataset_has_atime_off(host):
    assert host.check_output(f"zfs get -H -o value atime {DATASET}") == "off"


def test_config_file_starts_with_the_managed_header(host):
    assert host.file(CONFIG).content_string.startswith("# Managed by Ansible")


@pytest.mark.parametrize("line", ["dataset=zdata/molecule", "mountpoint=/zdata/molecule"])
def test_config_file_names_the_dataset(host, line):
    assert line in host.file(CONFIG).content_string.splitlines()


def test_config_file_names_its_own_node(host, facts):
    assert f"node={facts['ansible_hostname']}" in host.file(CONFIG).content_string.splitlines()


def test_config_file_is_owned_by_root_and_not_world_writable(host):
    config = host.file(CONFIG)
    assert config.uid == 0 and config.mode == 0o644
