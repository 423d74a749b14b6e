"""A triage app over a temporary database, with the analysts of feedback_helpers (alice and bob sign in)."""

from __future__ import annotations

from pathlib import Path

from feedback_helpers import ANALYSTS_TOML
from werkzeug.security import generate_password_hash

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}


def analysts_file(directory: Path) -> Path:
    """The analysts file of feedback_helpers with sign-in passwords added."""
    text = ANALYSTS_TOML
    for name, password in PASSWORDS.items():
        hashed = generate_password_hash(password)
        text = text.replace(f'name = "{name}"\n', f'name = "{name}"\npassword_hash = "{hashed}"\n')
    path = directory / "analysts.toml"
    path.write_text(text)
    return path
