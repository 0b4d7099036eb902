"""HTTP errors in one shape: FastAPI's `{"detail": [{"loc", "msg", "type"}]}` (what A1111 clients parse)
plus a one-line `"error"` for people and scripts. Request values are never echoed back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from keypaint.errors import InvalidParams, KeypaintError
from keypaint.server.job_store import QueueFull


class FieldError(InvalidParams):
    """`InvalidParams` already named the way the request that caused it names the field."""


def rename(err: InvalidParams, names: Mapping[str, str]) -> FieldError:
    """`err` with its field renamed to the request's own name for it (cfg_scale for guidance_scale ...)."""
    field = names.get(err.field, err.field)
    message = str(err).split(": ", 1)[-1]
    return FieldError(field, message)


def field_error(field: str, message: str, status: int = 422) -> JSONResponse:
    detail = [{"loc": ["body", field], "msg": message, "type": "value_error"}]
    return JSONResponse({"detail": detail, "error": f"{field}: {message}"}, status_code=status)


def install(app: FastAPI, retry_after: Any) -> None:
    """Register the handlers; `retry_after()` gives the seconds a 429 asks clients to wait."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [_clean(e) for e in exc.errors()]
        first = detail[0] if detail else {"loc": ["body"], "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return JSONResponse({"detail": detail, "error": f"{field}: {first['msg']}"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's own 400s (a body that is not UTF-8, or JSON nested past the parser's depth) and 404s
        # carry only `detail`; every answer here also has the one-line `error`.
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = "body: not JSON keypaint can read (invalid UTF-8, or nested too deeply)"
        return JSONResponse({"detail": exc.detail, "error": message}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(InvalidParams)
    async def _invalid(_request: Request, exc: InvalidParams) -> JSONResponse:
        return field_error(exc.field, str(exc).split(": ", 1)[-1])

    @app.exception_handler(KeypaintError)
    async def _keypaint(_request: Request, exc: KeypaintError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "error": str(exc)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def _full(_request: Request, exc: QueueFull) -> JSONResponse:
        seconds = int(retry_after())
        message = f"{exc}; try again in about {seconds} s"
        return JSONResponse({"detail": message, "error": message}, status_code=429,
                            headers={"Retry-After": str(seconds)})


def _clean(error: Mapping[str, Any]) -> dict[str, Any]:
    loc: Sequence[Any] = error.get("loc", ())
    return {"loc": list(loc), "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
