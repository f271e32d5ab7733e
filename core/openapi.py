"""The served OpenAPI document, shaped for client generators.

FastAPI's own document is the start; three things are added once, when it is first asked for
(nothing here runs per request):

- the problem schema that every error response refers to (``errors.error_responses``);
- the security schemes, and on every operation the ones it accepts: ``bearer`` (an access
  token from a sign-in) and ``apiKey`` (an ``mh_`` key in the same header) where a route
  requires a permission or a signed-in caller, ``bearer`` alone for customer-only routes,
  both or none (``{}``) where signing in is optional, and an explicit ``[]`` on anonymous
  routes, so a generator never guesses;
- operation ids ``<tag>_<verb>``: the route's first tag (its plugin's name, or the core
  area) and its endpoint function's name without the words of the tag, e.g.
  ``create_booking`` under ``bookings`` is ``bookings_create``. They change only when a
  function is renamed; a route may pin its own with ``operation_id=``;
- the ``Location`` header of a creating route's 201 (``routing.locate``).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from myhibachi.core import auth
from myhibachi.core.errors import ProblemModel

SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An access token from a customer or staff sign-in."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
               "description": "An API key for machines: `Authorization: Bearer mh_...`."},
}
_SIGNED_IN = [{"bearer": []}, {"apiKey": []}]
_OPTIONAL = [{}, {"bearer": []}, {"apiKey": []}]


def _calls(route: APIRoute) -> set:
    seen, stack = set(), list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        seen.add(dep.call)
        stack.extend(dep.dependencies)
    return seen


def security_of(route: APIRoute) -> list[dict[str, list]]:
    """What the route accepts, read off its dependencies."""
    calls = _calls(route)
    if auth.current_customer in calls:
        return [{"bearer": []}]
    if auth.authenticated in calls or any(getattr(c, "permission", None) for c in calls):
        return _SIGNED_IN
    if auth.current_principal in calls:
        return _OPTIONAL
    return []


def operation_id(route: APIRoute) -> str:
    tag = (route.tags[0] if route.tags else "api").replace(" ", "_").lower()
    noise = {tag, tag.rstrip("s"), *tag.split("_"), *(w.rstrip("s") for w in tag.split("_"))}
    verb = "_".join(w for w in route.name.split("_") if w and w not in noise) or route.name
    return f"{tag}_{verb}"


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = FastAPI.openapi(app)
            problem = ProblemModel.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
            components = spec.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.update(problem.pop("$defs", {}))
            schemas["ProblemModel"] = problem
            components["securitySchemes"] = SCHEMES
            for route in app.routes:
                if not isinstance(route, APIRoute) or not route.include_in_schema:
                    continue
                for method in route.methods:
                    op = spec["paths"].get(route.path_format, {}).get(method.lower())
                    if op is None:
                        continue
                    if route.operation_id is None:
                        op["operationId"] = operation_id(route)
                    op["security"] = security_of(route)
                    if getattr(route, "located", False):
                        op["responses"]["201"]["headers"] = {"Location": {
                            "description": "Where the new resource is read.", "schema": {"type": "string"}}}
        return app.openapi_schema

    app.openapi = openapi
