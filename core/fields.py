"""Plugins' typed fields on the core's request and response models, composed at start-up.

Each plugin answering ``register_fields`` adds one field named after itself to the models
it names (``{"locations": {"location_id": ...}}`` on a booking create), so the served
OpenAPI document types it and a generated client gets a real attribute. The models are
built once, in ``create_app``; the core's routers are built with them. The views
(``booking``, ``customer``) are filled per response by the plugin's ``booking_fields`` /
``customer_fields`` hook, from the rows: a plugin's ``customer_columns`` are added to the
core's customer lookups here, once, so the customer view costs no statement of its own.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

# what a plugin may extend, and the core model each name builds on
KINDS = ("booking_create", "booking_update", "quote", "booking", "availability", "slot", "customer")


@dataclass(frozen=True)
class Models:
    """The composed models (the core's own when no plugin adds a field)."""

    booking_create: type[BaseModel]
    booking_update: type[BaseModel]
    quote: type[BaseModel]
    booking: type[BaseModel]
    booking_page: type[BaseModel]
    availability: QueryModel  # the availability query parameters, the plugins' included
    slot: type[BaseModel]
    availability_answer: type[BaseModel]
    customer: type[BaseModel]
    customer_page: type[BaseModel]
    customer_profile: Any  # customers.Profile: the lookups with the plugins' customer_columns
    booking_columns: tuple = ()  # the plugins' booking_columns, answered by the core's statements of bookings
    owners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> plugin names


def compose(manager, strict: bool = False) -> Models:
    """Ask every plugin for its fields once and build the models; a plugin naming an unknown
    kind, or giving something that is not a pydantic model, is left out."""
    from myhibachi.core import bookings as svc
    from myhibachi.core import customers

    wanted: dict[str, dict[str, type[BaseModel]]] = {kind: {} for kind in KINDS}
    columns: list = []
    booking_columns: list = []
    for plugin, answer in manager.setup_call("register_fields", strict=strict):
        answer = dict(answer or {})
        own = tuple(answer.pop("customer_columns", ()))
        own_bookings = tuple(answer.pop("booking_columns", ()))
        bad = [k for k, m in answer.items() if k not in wanted or not (isinstance(m, type) and issubclass(m, BaseModel))]
        if bad:
            manager.fail(plugin, f"register_fields: {sorted(bad)} are not extendable models", strict)
            continue
        unlabelled = [c for c in (*own, *own_bookings)
                      if not (isinstance(c, sa.Label) and c.name.startswith(f"{plugin.name}."))]
        if unlabelled:
            manager.fail(plugin, f"register_fields: customer_columns and booking_columns must be labelled "
                                 f"'{plugin.name}.<name>'", strict)
            continue
        for kind, model in answer.items():
            wanted[kind][plugin.name] = model
        columns.extend(own)
        booking_columns.extend(own_bookings)
    query_names = [f for model in wanted["availability"].values() for f in model.model_fields]
    clash = {f for f in query_names if query_names.count(f) > 1} | (set(query_names) & AVAILABILITY_PARAMS)
    if clash:
        raise RuntimeError(f"register_fields: availability parameters {sorted(clash)} are declared twice")

    def extended(base: type[BaseModel], kind: str) -> type[BaseModel]:
        plugins = wanted[kind]
        if not plugins:
            return base
        return create_model(base.__name__, __base__=base, __module__=base.__module__,
                            **{name: (model | None, None) for name, model in plugins.items()})

    def paged(page: type[BaseModel], item: type[BaseModel], base: type[BaseModel]) -> type[BaseModel]:
        if item is base:
            return page
        return create_model(page.__name__, __base__=page, __module__=page.__module__, items=(list[item], ...))

    booking = extended(svc.Booking, "booking")
    slot = extended(svc.Slot, "slot")
    customer = extended(customers.Customer, "customer")
    return Models(booking_create=extended(svc.BookingCreate, "booking_create"),
                  booking_update=extended(svc.BookingUpdate, "booking_update"),
                  quote=extended(svc.QuoteRequest, "quote"), booking=booking,
                  booking_page=paged(svc.BookingPage, booking, svc.Booking),
                  availability=_query_model(wanted["availability"]), slot=slot,
                  availability_answer=svc.Availability if slot is svc.Slot else create_model(
                      "Availability", __base__=svc.Availability, __module__=svc.Availability.__module__,
                      slots=(list[slot], ...)),
                  customer=customer, customer_page=paged(customers.CustomerPage, customer, customers.Customer),
                  customer_profile=customers.profile(tuple(columns)), booking_columns=tuple(booking_columns),
                  owners=MappingProxyType({kind: tuple(wanted[kind]) for kind in KINDS}))


class AvailabilityQuery(BaseModel):
    """The core's availability query parameters; plugins' fields join them, flat."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    start_day: date = Field(alias="from", description="First local day.")
    end_day: date = Field(alias="to", description="Last local day (at most 31 days).")
    party_size: int | None = Field(None, ge=1, le=10_000)
    time_zone: str | None = Field(None, max_length=64, description="IANA time zone of the event.")
    duration_minutes: int | None = Field(None, ge=5, le=24 * 60)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-\d{4})?$",
                                 description="Where the event takes place, as create takes it.")


AVAILABILITY_PARAMS = {f.alias or name for name, f in AvailabilityQuery.model_fields.items()}
_NONE: Mapping[str, BaseModel] = MappingProxyType({})


@dataclass(frozen=True)
class QueryModel:
    """Query parameters validated as one model per request (one pydantic call instead of
    one per parameter), declared to OpenAPI parameter by parameter as FastAPI would."""

    model: type[BaseModel]
    plugins: Mapping[str, type[BaseModel]]  # plugin -> its model, whose fields are flat in ``model``

    def parse(self, request) -> tuple[BaseModel, Mapping[str, BaseModel]]:
        """The validated parameters and ``{plugin: its model}`` for the plugins given any;
        a bad value is the same 422 as a declared parameter's."""
        try:
            given = self.model.model_validate(request.query_params)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None
        inputs = {}
        for plugin, model in self.plugins.items():
            values = {name: getattr(given, name) for name in model.model_fields if getattr(given, name) is not None}
            if values:
                inputs[plugin] = model.model_construct(**values)  # validated as query parameters
        return given, MappingProxyType(inputs) if inputs else _NONE

    def openapi(self) -> dict[str, Any]:
        schema = self.model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        if "$defs" in schema:
            raise RuntimeError("availability parameters are scalars; a nested model cannot be a query parameter")
        required = set(schema.get("required", ()))
        params = []
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
        return {"parameters": params}


def _query_model(models: dict[str, type[BaseModel]]) -> QueryModel:
    fields = {name: (Annotated[f.annotation | None, *f.metadata] if f.metadata else f.annotation | None,
                     Field(None, description=f.description))
              for model in models.values() for name, f in model.model_fields.items()}
    composed = create_model("AvailabilityQuery", __base__=AvailabilityQuery, **fields) if fields else AvailabilityQuery
    return QueryModel(composed, MappingProxyType(dict(models)))


def core_models() -> Models:
    """The core's models without any plugin's fields (a context built outside ``create_app``)."""
    from myhibachi.core import bookings as svc
    from myhibachi.core import customers

    return Models(svc.BookingCreate, svc.BookingUpdate, svc.QuoteRequest, svc.Booking, svc.BookingPage,
                  _query_model({}), svc.Slot, svc.Availability, customers.Customer, customers.CustomerPage,
                  customers.CORE_PROFILE)


def inputs_of(data: BaseModel, names: tuple[str, ...]) -> Mapping[str, BaseModel]:
    """The plugins' fields a request carried, by plugin name (the ones it left out absent)."""
    if not names:
        return _NONE
    return MappingProxyType({name: value for name in names if (value := getattr(data, name, None)) is not None})


def plain_inputs(inputs: Mapping[str, BaseModel]) -> dict[str, Any]:
    """The plugins' fields as plain JSON under each plugin's name, for an event's payload."""
    return {name: model.model_dump(mode="json", exclude_none=True) for name, model in inputs.items()}
