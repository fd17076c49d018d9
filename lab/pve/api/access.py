"""`/access/ticket`: password login, answered with a ticket cookie value and a CSRF prevention token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.pve.app import ApiError, Request
from lab.pve.auth import AuthError
from lab.pve.schema import Prop, schema

if TYPE_CHECKING:
    from lab.pve.app import PveApp

TICKET_SCHEMA = schema(
    {
        "username": Prop(optional=False, max_length=64),
        "password": Prop(optional=False),
        "realm": Prop(format="pve-realm", max_length=32),
        "otp": Prop(),
        "path": Prop(max_length=64, requires="privs"),
        "privs": Prop(format="pve-priv-list", max_length=64, requires="path"),
        "new-format": Prop("boolean", default=1),
        "tfa-challenge": Prop(),
    }
)


def register(app: PveApp) -> None:
    app.route("GET", "/access/ticket", schema(), auth=False)(lambda request: None)
    app.route("POST", "/access/ticket", TICKET_SCHEMA, auth=False)(create_ticket)


def create_ticket(request: Request) -> dict[str, Any]:
    params = request.params
    try:
        user, ticket, csrf = request.app.auth.login(params["username"], params["password"], params.get("realm"))
    except AuthError as exc:
        raise ApiError(401, str(exc)) from None
    return {
        "username": user,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "clustername": request.app.config.cluster_name,
        "cap": {},
    }
