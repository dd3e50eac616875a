"""Reading segments.yaml without letting it expand: YAML aliases are refused.

A few hundred bytes of nested anchors and aliases (a "billion laughs" document) expand to
gigabytes in PyYAML's safe_load; segments.yaml never needs an alias, so a document holding one
is an error naming its line.
"""

from __future__ import annotations

import yaml


class AliasRefused(yaml.YAMLError):
    """segments.yaml used a YAML alias (`*name`), which segpipe does not accept."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasRefused(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "accepted; write the value out"
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> object:
    """The document in `text`, as yaml.safe_load gives it; raises yaml.YAMLError (AliasRefused
    for an alias) when it is not valid or uses an alias."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
