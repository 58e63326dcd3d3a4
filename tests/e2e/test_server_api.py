"""The server's own API contract, checked against the deployed server (as backup-repository's own
tests/test_login.py and tests/test_collection.py check it)."""

import secrets

import pytest

from e2e_harness.backups import make_gpg_keys

pytestmark = pytest.mark.e2e


def test_login_with_a_wrong_password_is_refused_with_401(backup_server):
    name = backup_server.new_name("user")
    backup_server.admin.create_user(name, "right-password-" + secrets.token_hex(4), ["backupUploader"])
    response = backup_server.client.request("POST", "/api/stable/auth/login",
                                            json={"username": name, "password": "wrong"})
    assert response.status_code == 401, response.text
    assert "incorrect Username or Password" in response.text


def test_login_gives_a_token_and_whoami_names_the_user(backup_server):
    name = backup_server.new_name("user")
    password = secrets.token_urlsafe(12)
    email = backup_server.admin.create_user(name, password, ["backupDownloader"])
    token = backup_server.client.login(name, password)
    assert token.count(".") == 2, "the login token is not a JWT"
    assert backup_server.client.whoami(token)["email"] == email


def test_upload_without_the_uploader_role_is_refused(backup_server):
    collection = backup_server.collection()
    token = backup_server.role_token(["backupDownloader"])
    response = backup_server.client.upload(token, collection, _encrypted(b"some data", backup_server))
    assert response.status_code == 403, response.text
    assert "not authorized to upload versions to this collection" in response.text
    assert backup_server.client.versions(backup_server.role_token(["systemAdmin"]), collection) == []


def test_plaintext_upload_is_refused_and_stores_nothing(backup_server):
    collection = backup_server.collection()
    token = backup_server.role_token(["collectionManager"])
    response = backup_server.client.upload(token, collection, b"plain text, not a GPG message\n" * 10)
    assert response.status_code == 500, response.text
    assert "does not contain a valid GPG header" in response.text
    assert backup_server.client.versions(token, collection) == []


def test_encrypted_upload_is_stored_and_downloaded_byte_for_byte(backup_server):
    collection = backup_server.collection()
    token = backup_server.role_token(["collectionManager"])
    body = _encrypted(b"row 1\nrow 2\n", backup_server)
    response = backup_server.client.upload(token, collection, body)
    assert response.status_code == 200, response.text
    versions = backup_server.client.versions(token, collection)
    assert [v["versionNumber"] for v in versions] == [1], versions
    assert backup_server.client.download(token, collection, 1) == body


def _encrypted(plaintext: bytes, backup_server) -> bytes:
    return make_gpg_keys("api-check@e2e.invalid", backup_server.client.masker).encrypt(plaintext)
