"""Errors that become HTTP answers: a status and a reason the caller can act on."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def not_found(what: str, key: object) -> ApiError:
    # Out-of-scope rows answer exactly like missing ones, so a token cannot probe other departments.
    return ApiError(404, f"{what} {key} not found")
