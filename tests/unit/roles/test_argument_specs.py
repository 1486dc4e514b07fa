"""Each role's meta/argument_specs.yml is its reference documentation: it must
describe exactly the variables of defaults/main.yml, with the same defaults."""

import pathlib

import pytest
import yaml

ROLES = sorted(p for p in (pathlib.Path(__file__).parents[3] / "roles").iterdir() if p.is_dir())


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_main_entry_point_matches_defaults(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], name
        assert spec.get("description"), f"{name} has no description"
        assert name.startswith(role.name + "_"), f"{name} does not carry the role's name"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_internal_variables_are_prefixed(role):
    for path in (role / "vars").glob("*.yml"):
        for name in load(path):
            assert name.startswith(f"_{role.name}_"), f"{path.name}: {name}"
