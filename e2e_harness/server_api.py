"""The backup-repository server as the scenarios see it: admin objects and the HTTP API.

Users and collections are custom resources (``backups.riotkit.org/v1alpha1``) with
Secrets in the server's namespace; the server reads them on every request, so they
can be created while it runs. Passwords are argon2id strings made exactly the way
the server's ``--encode-password`` makes them (backup-repository pkg/security/crypto.go:48-55).
Every password, token and health code made here is registered with the masker.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field

import requests
import yaml
from argon2.low_level import Type, hash_secret_raw
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from .kube import Kube
from .masking import SecretMasker

API_GROUP = "backups.riotkit.org/v1alpha1"
HTTP_TIMEOUT = (5, 60)
# 429s and "too short interval between login attempts" are retried this long. The server's rate limits
# are per client IP (pkg/http/main.go: gin-limiter keyed by ClientIP), and its chart cannot raise them
# (templates/deployment.yaml: fixed args; main.go: no environment variables for --rate-*). The tests are
# one client behind one port-forward; logins are 10 per minute by default, and gin-limiter refills the
# whole bucket once per interval (ratelimit.NewBucketWithQuantum(interval, capacity, capacity)): a 429
# on login can need up to a minute. So: one whole interval plus margin, the server's defaults untouched.
TRANSIENT_SECONDS = 75


class ServerApiError(RuntimeError):
    """The server answered something a scenario did not expect; the message has the status and body."""


def encode_password(password: str) -> str:
    """What ``backup-repository --encode-password`` prints: base64 of the PHC-like argon2id string."""
    salt = secrets.token_bytes(16)
    key = hash_secret_raw(password.encode(), salt, time_cost=1, memory_cost=65536, parallelism=4,
                          hash_len=32, type=Type.ID)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731 - standard base64 with padding, as Go's
    return b64(f"$argon2id$v=19$m=65536,t=1,p=4${b64(salt)}${b64(key)}".encode())


@dataclass
class ServerAdmin:
    """Creates users and collections as custom resources; removes what it created on ``cleanup``."""

    kube: Kube
    namespace: str
    masker: SecretMasker   # the run's: passwords, health codes and Secret values go through it
    created: list[tuple[str, str, str]] = field(default_factory=list)  # (apiVersion, kind, name)

    def _apply(self, obj: dict) -> None:
        obj.setdefault("metadata", {})["namespace"] = self.namespace
        self.kube.apply([obj])
        self.created.append((obj["apiVersion"], obj["kind"], obj["metadata"]["name"]))

    def _secret(self, name: str, entry: str, data_value: str) -> None:
        """The server reads the raw API value of ``data.<entry>`` (still base64 as the API stores it) and
        ignores ``stringData``: the value goes in verbatim, e.g. ``--encode-password``'s output."""
        self.masker.add(data_value)
        self._apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                     "data": {entry: data_value}})

    def create_user(self, name: str, password: str, roles: list[str]) -> str:
        """A BackupUser whose password Secret holds the argon2id string; returns its e-mail.

        The login is the object's name (the server looks users up by ``metadata.name``)."""
        self.masker.add(password)
        email = f"{name}@e2e.invalid"
        self._secret(f"{name}-password", "password", encode_password(password))
        self._apply({"apiVersion": API_GROUP, "kind": "BackupUser", "metadata": {"name": name},
                     "spec": {"email": email, "roles": roles,
                              "passwordFromRef": {"name": f"{name}-password", "entry": "password"}}})
        return email

    def create_collection(self, name: str, *, max_backups_count: int = 5, max_one_version_size: str = "1M",
                          max_collection_size: str = "10M", strategy: str = "fifo") -> str:
        """A BackupCollection with a health Secret; returns the health code (its sha256 is stored)."""
        code = secrets.token_urlsafe(12)
        self.masker.add(code)
        self._secret(f"{name}-health", "code", hashlib.sha256(code.encode()).hexdigest())
        self._apply({"apiVersion": API_GROUP, "kind": "BackupCollection", "metadata": {"name": name},
                     "spec": {"description": f"e2e collection {name}", "filenameTemplate": f"{name}-${{version}}.gpg",
                              "maxBackupsCount": max_backups_count, "maxOneVersionSize": max_one_version_size,
                              "maxCollectionSize": max_collection_size, "strategyName": strategy,
                              "strategySpec": {}, "healthSecretRef": {"name": f"{name}-health", "entry": "code"}}})
        return code

    def cleanup(self) -> None:
        for api_version, kind, name in reversed(self.created):
            self.kube.delete(api_version, kind, name, self.namespace)
        self.created.clear()


def _transient(response: requests.Response) -> bool:
    return response.status_code == 429 or (
        response.status_code == 500 and "too short interval between login attempts" in response.text)


class ServerClient:
    """The server's HTTP API (listing under ``stable``, upload and download under ``alpha``)."""

    def __init__(self, base_url: str, masker: SecretMasker):
        self.base_url = base_url.rstrip("/")
        self.masker = masker   # the run's: every token it receives goes through it
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        """One call; 429 and the server's login-collision 500 are retried (bounded), nothing else."""
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        retrying = Retrying(stop=stop_after_delay(TRANSIENT_SECONDS), wait=wait_exponential(0.2, max=5),
                            retry=retry_if_result(_transient), retry_error_callback=lambda state: state.outcome.result())
        return retrying(lambda: self.session.request(method, self.base_url + path, headers=headers,
                                                     timeout=HTTP_TIMEOUT, **kwargs))

    def login(self, username: str, password: str) -> str:
        response = self.request("POST", "/api/stable/auth/login", json={"username": username, "password": password})
        data = _data(response, f"login as {username}")
        self.masker.add(data["token"])
        return data["token"]

    def whoami(self, token: str) -> dict:
        return _data(self.request("GET", "/api/stable/auth/whoami", token), "whoami")

    def versions(self, token: str, collection: str) -> list[dict]:
        """The collection's versions, oldest first (the server lists them unordered)."""
        data = _data(self.request("GET", f"/api/stable/repository/collection/{collection}/version", token),
                     f"list versions of collection {collection}")
        return sorted(data.get("versions") or [], key=lambda v: v["versionNumber"])

    def download(self, token: str, collection: str, version: str | int = "latest") -> bytes:
        response = self.request("GET", f"/api/alpha/repository/collection/{collection}/version/{version}", token)
        if response.status_code != 200:
            raise ServerApiError(f"download of version {version} of collection {collection}: "
                                 f"HTTP {response.status_code} {response.text[:300]!r}")
        return response.content

    def upload(self, token: str, collection: str, body: bytes) -> requests.Response:
        return self.request("POST", f"/api/alpha/repository/collection/{collection}/version", token, data=body,
                            headers={"Content-Type": "application/octet-stream"})

    def ready(self, health_key: str) -> requests.Response:
        """``/ready`` with the key in a raw ``Authorization`` header (kept out of access-log URLs)."""
        return self.session.get(self.base_url + "/ready", headers={"Authorization": health_key},
                                timeout=HTTP_TIMEOUT)


def _data(response: requests.Response, what: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("status"):
        raise ServerApiError(f"{what}: HTTP {response.status_code}, body {response.text[:300]!r}")
    return body.get("data") or {}


def logged_in_user(admin: ServerAdmin, client: ServerClient, name: str, roles: list[str]) -> str:
    """A new user ``name`` with ``roles`` and a random password, logged in: its JWT."""
    password = secrets.token_urlsafe(16)
    admin.create_user(name, password, roles)
    return client.login(name, password)


@dataclass
class RoleTokens:
    """One user per set of roles for the whole test process, logged in once, removed at its end.

    The server allows 10 logins per minute per client IP (main.go, ``--rate-auth-limit``), and every
    scenario of a run reaches it from the same address: two new users per scenario made that limit the
    concurrent suite's floor (about 45 logins: over 3 minutes of waiting). A user's roles apply to every
    collection (no collection of the harness has an access list), so a scenario's inspector
    (collectionManager) or uploader is the same whoever else uses it; its JWT lasts 6 hours
    (pkg/http/auth.go). Scenarios about users and logins themselves make their own (``user_token``)."""

    admin: ServerAdmin
    client: ServerClient
    prefix: str
    _tokens: dict[tuple[str, ...], str] = field(default_factory=dict)

    def token(self, roles: list[str]) -> str:
        key = tuple(sorted(roles))
        if key not in self._tokens:
            name = f"{self.prefix}-{len(self._tokens) + 1}"[:63]
            self._tokens[key] = logged_in_user(self.admin, self.client, name, list(key))
        return self._tokens[key]

    def close(self) -> None:
        self.client.close()
        self.admin.cleanup()


@dataclass
class BackupServer:
    """What a scenario needs of the server: users with tokens and collections, named after its test."""

    admin: ServerAdmin
    client: ServerClient
    prefix: str
    tokens: RoleTokens | None = None   # the process's users by role (role_token); None: a new user each time
    _count: int = 0

    def new_name(self, what: str) -> str:
        """A name for a new object of this test: the test's namespace, ``what`` and a counter."""
        self._count += 1
        return f"{self.prefix}-{what}{self._count}"[:63]

    def user_token(self, roles: list[str]) -> str:
        """A new user with ``roles``, logged in: its JWT."""
        return logged_in_user(self.admin, self.client, self.new_name("user"), roles)

    def role_token(self, roles: list[str]) -> str:
        """A JWT of a user with exactly ``roles``, shared with the process's other scenarios (RoleTokens)."""
        return self.tokens.token(roles) if self.tokens is not None else self.user_token(roles)

    def collection(self, **limits) -> str:
        """A new collection (see ``ServerAdmin.create_collection`` for the limits); its id."""
        name = self.new_name("c")
        self.admin.create_collection(name, **limits)
        return name

    def version_listing(self) -> str:
        """Every collection this test made, with its versions as the server lists them (failure bundles)."""
        collections = [name for _, kind, name in self.admin.created if kind == "BackupCollection"]
        if not collections:
            return "no collection was created by this test\n"
        token = self.role_token(["systemAdmin"])
        listing = {}
        for name in collections:
            try:
                listing[name] = self.client.versions(token, name)
            except (ServerApiError, requests.RequestException) as exc:
                listing[name] = f"<cannot list: {exc}>"
        return yaml.safe_dump(listing, sort_keys=False)

    def close(self) -> None:
        self.client.close()
        self.admin.cleanup()
