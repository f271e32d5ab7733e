"""Request and response models of the admin users and roles API."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from myhibachi.core import NextCursor, customers

ROLE_NAME = r"^[a-z][a-z0-9_]{1,63}$"


class AdminUserCreate(BaseModel):
    email: customers.EmailAddress
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(description="At least 12 characters, with letters and digits or symbols.")
    roles: list[str] = Field(default_factory=list, description="Role names.")


class AdminUserUpdate(BaseModel):
    email: customers.EmailAddress | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = None
    status: Literal["active", "inactive"] | None = None


class AdminUser(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    status: str
    roles: list[str]
    last_login: datetime | None
    created_at: datetime
    updated_at: datetime


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: NextCursor


class RoleAssignment(BaseModel):
    roles: list[str] = Field(description="The complete set of role names the user holds.")


class RoleCreate(BaseModel):
    name: str = Field(pattern=ROLE_NAME)
    description: str = Field(default="", max_length=2000)
    permissions: list[str] = Field(description="Registered permission strings; 'area.*' and '*' allowed.")


class RoleUpdate(BaseModel):
    description: str | None = Field(default=None, max_length=2000)
    permissions: list[str] | None = None


class Role(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    permissions: list[str]
    builtin: bool
    created_at: datetime
    updated_at: datetime


class RoleList(BaseModel):
    """Every role on one page (a business has a handful)."""
    items: list[Role]
    next_cursor: NextCursor


class PermissionList(BaseModel):
    """Every permission on one page."""
    items: list[str]
    next_cursor: NextCursor


class LoginRequest(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class LoginResponse(Token):
    user: AdminUser
