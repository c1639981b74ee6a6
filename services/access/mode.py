"""Whether the API requires authentication: always when it listens beyond loopback; on loopback
when asked (REGISTRAR_AUTH=required, or --auth)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SETTING_VALUES = ("required", "optional", "")


@dataclass(frozen=True, slots=True)
class AuthMode:
    required: bool
    why: str

    def announcement(self) -> str:
        if self.required:
            return (
                f"Authentication: required ({self.why}): bearer tokens, made with"
                " `registrar token create`."
            )
        return (
            f"Authentication: off ({self.why}): every caller is admin. "
            "--auth or REGISTRAR_AUTH=required turns it on."
        )


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or localhost). Any other name counts as exposed."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_mode(setting: str, flag: bool, host: str) -> AuthMode:
    """The mode for REGISTRAR_AUTH=`setting`, --auth=`flag`, listening on `host`."""
    if setting not in SETTING_VALUES:
        raise ValueError(f"REGISTRAR_AUTH must be 'required' or 'optional', not {setting!r}")
    if not is_loopback(host):
        return AuthMode(True, f"listening on {host}, beyond loopback")
    if flag:
        return AuthMode(True, "--auth")
    if setting == "required":
        return AuthMode(True, "REGISTRAR_AUTH=required")
    return AuthMode(False, f"listening on loopback {host} only")
