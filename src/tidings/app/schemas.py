"""Request and response bodies of the HTTP API, for validation and the OpenAPI spec.

Handlers on the hot path write pre-encoded JSON themselves; these models are
what that JSON is documented (and checked by schemathesis) to be.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tidings.domain.commands import Name, Role


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str
    detail: str


class SignIn(_Strict):
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    is_admin: bool


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str


class ProjectSummary(BaseModel):
    id: int
    name: str
    role: Role
    version: int


class ProjectList(BaseModel):
    projects: list[ProjectSummary]


class MeOut(BaseModel):
    user: UserOut
    projects: list[ProjectSummary]
    #: Seconds before a page should ask again (AppSettings.projects_refresh).
    projects_refresh: float


class NewApiToken(_Strict):
    name: Annotated[str, StringConstraints(max_length=200)] = ""


class ApiTokenOut(BaseModel):
    token: str


class NewProject(_Strict):
    name: Name


class EventOut(BaseModel):
    version: int
    type: str
    data: dict[str, Any]
    actor: int
    ts: float


class CommandResult(BaseModel):
    project: int
    version: int
    event: EventOut
    created_id: int | None


class AdviceOut(BaseModel):
    push: bool
    interval: float
    fallback_interval: float
    jitter: float


class PollOut(BaseModel):
    project: int
    version: int
    since: int
    events: list[EventOut]
    has_more: bool
    reload: Literal["ahead", "pruned"] | None
    advice: AdviceOut


class HistoryOut(BaseModel):
    project: int
    version: int
    pruned_through: int
    story: int | None
    events: list[EventOut]
    next_before: int | None


class PollError(BaseModel):
    error: Literal["not_found"]


class MultiPollOut(BaseModel):
    projects: dict[str, PollOut | PollError]
    advice: AdviceOut


class Member(BaseModel):
    user_id: int
    role: Role
    name: str


class Comment(BaseModel):
    id: int
    author_id: int
    text: str
    created_at: float
    edited_at: float | None


class Task(BaseModel):
    id: int
    text: str
    done: bool


class Story(BaseModel):
    id: int
    title: str
    description: str
    story_type: str
    state: str
    estimate: int | None
    owner_id: int | None
    labels: list[str]
    created_at: float
    updated_at: float
    #: When it last became accepted (velocity counts accepted points by week); None
    #: unless accepted, and for stories accepted before the field was kept.
    accepted_at: float | None = None
    comments: list[Comment]
    tasks: list[Task]


class Snapshot(BaseModel):
    id: int
    name: str
    version: int
    next_id: int
    members: list[Member]
    stories: list[Story]


class PushTokenRequest(_Strict):
    projects: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=1000)] | None = None


class PushTokenOut(BaseModel):
    token: str
    expires_at: float
    projects: list[int]


class PushUrlsOut(BaseModel):
    ws: str | None
    sse: str | None
    socketio: str | None


class PushConfig(BaseModel):
    enabled: bool
    urls: PushUrlsOut
    token_url: str


class ClientConfig(BaseModel):
    push: PushConfig
    advice: AdviceOut
    flags: dict[str, bool]


class FlagsOut(BaseModel):
    enabled: bool
    rollout_percent: int
    projects: dict[str, bool]


class FlagsUpdate(_Strict):
    enabled: bool | None = None
    rollout_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    projects: (
        Annotated[
            dict[Annotated[str, StringConstraints(pattern=r"^[0-9]{1,15}$")], bool | None],
            Field(max_length=1000),
        ]
        | None
    ) = None
