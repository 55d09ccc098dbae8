"""API tokens: create (the text is shown once), list, revoke. Admin only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from owncdn.control.store import Token

from .auth import Ctx, require
from .errors import ApiProblem, error_responses
from .schemas import TokenCreate, TokenCreated, TokenOut, token_out

__all__ = ["router"]

router = APIRouter(tags=["tokens"])
Admin = Annotated[Token, Depends(require("admin"))]


@router.post(
    "/v1/tokens", status_code=201, response_model=TokenCreated,
    summary="Create a token", responses=error_responses(400, 401, 403, 422),
)
def create_token(body: TokenCreate, ctx: Ctx, _: Admin) -> TokenCreated:
    """Create a token with the given scopes. A `node` token made here is a
    bootstrap token: edges and DNS servers use it to register themselves."""
    token, text = ctx.store.create_token(body.name, frozenset(body.scopes))
    return TokenCreated(id=token.id, name=token.name, scopes=sorted(token.scopes), token=text)


@router.get("/v1/tokens", response_model=list[TokenOut], summary="List tokens", responses=error_responses(401, 403))
def list_tokens(ctx: Ctx, _: Admin) -> list[TokenOut]:
    """Every token, revoked ones included; never the token text."""
    return [token_out(t) for t in ctx.store.list_tokens()]


@router.delete(
    "/v1/tokens/{token_id}", status_code=204, response_class=Response,
    summary="Revoke a token", responses={204: {"description": "Revoked."}, **error_responses(401, 403, 404)},
)
def revoke_token(token_id: Annotated[str, Path(description="The token's id.")], ctx: Ctx, _: Admin) -> Response:
    """Revoke a token; requests with it are refused from now on. Revoking twice is fine."""
    ctx.tokens.clear()  # revocation takes effect at once on this replica
    if not ctx.store.revoke_token(token_id):
        raise ApiProblem(404, "not_found", f"there is no token with id {token_id}; GET /v1/tokens lists them")
    return Response(status_code=204)

