"""Commands that talk to the running Registrar ($REGISTRAR_URL, $REGISTRAR_TOKEN) through the
Python client: a refusal, the server's or the command's own, is told on stderr, exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registrar.client import Client


def run_with_client(command: str, work: Callable[[Client], int]) -> int:
    """`work`'s exit code, given a client of the running Registrar; 1 when the server refused
    (or could not be reached), or when `work` raised ValueError or OSError for what it was given.
    `command` ("registrar artifacts push") starts each line of the message."""
    from registrar.client import Client, ClientError

    try:
        with Client() as client:
            return work(client)
    except ClientError as refused:
        print(f"{command}: {refused}", file=sys.stderr)
        for field in refused.fields:
            print(f"{command}: {field.get('field')}: {field.get('problem')}", file=sys.stderr)
        for note in getattr(refused, "__notes__", ()):
            print(f"{command}: {note}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as refused:
        print(f"{command}: {refused}", file=sys.stderr)
        return 1
