"""The CDS Hooks 2.0 card vocabulary (Card, Suggestion, Action, Source, Link, Coding).

Optional fields are ``None`` and must be serialised with ``exclude_none=True``: the spec forbids
``null`` and empty values anywhere, so no list here may be empty and no string blank.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coding(_Model):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = Field(default=None, min_length=1)


class Source(_Model):
    label: str = Field(min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    icon: str | None = Field(default=None, pattern=r"^https?://\S+$")
    topic: Coding | None = None


class Link(_Model):
    label: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")
    type: Literal["absolute", "smart"]
    appContext: str | None = Field(default=None, min_length=1)


class Action(_Model):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: str | None = Field(default=None, pattern=r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


class Suggestion(_Model):
    label: str = Field(min_length=1)
    uuid: str | None = Field(default=None, min_length=1)
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(default=None, min_length=1)


class Card(_Model):
    uuid: str | None = Field(default=None, min_length=1)
    summary: str = Field(min_length=1, max_length=139)
    detail: str | None = Field(default=None, min_length=1)
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = Field(default=None, min_length=1)
    links: list[Link] | None = Field(default=None, min_length=1)


class CdsResponse(_Model):
    cards: list[Card]
    systemActions: list[Action] | None = Field(default=None, min_length=1)
