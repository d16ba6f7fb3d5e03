"""The ``kubectl oec`` command line: cluster flags before or after the command, as with kubectl."""

from __future__ import annotations

import pytest

from oec_operator.plugin import parser


@pytest.mark.parametrize("argv", [
    ["-n", "shop", "status", "web"],
    ["status", "web", "-n", "shop"],
    ["status", "-n", "shop", "web"],
])
def test_the_namespace_flag_works_before_and_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.command, args.name, args.namespace) == ("status", "web", "shop")


def test_flags_after_the_command_win_and_absent_ones_keep_what_came_before() -> None:
    args = parser().parse_args(["--context", "prod", "-n", "a", "logs", "web", "-n", "b"])
    assert (args.context, args.namespace, args.kubeconfig) == ("prod", "b", None)
