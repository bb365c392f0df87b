"""AS2 parsing against real payloads from other fediverse software, and against hostile input."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server.federation.vocab import (
    ACTIVITY_TYPES,
    OBJECT_TYPES,
    PUBLIC,
    Activity,
    Actor,
    Link,
    Mentorship,
    Post,
    PublicKey,
    Source,
    Tag,
    Tombstone,
    VocabError,
    parse_activity,
    parse_object,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "activitypub"
FILES = sorted(FIXTURES.rglob("*.json"))

# Documents of a supported top-level type that are still refused, and why: what they act on
# is something Kith does not handle.
EXPECTED_REJECTIONS = {
    "lemmy/activities/create_or_update/create_private_message_0.19.json": (
        "unsupported object type ChatMessage (in object)"
    ),
    "friendica/activities/undo_dislike_page.json": "unsupported activity type Dislike (in object)",
    "lemmy/activities/block/undo_block_user.json": "unsupported activity type Block (in object)",
    "lemmy/activities/community/undo_lock_note.json": "unsupported activity type Lock (in object)",
    "lemmy/activities/community/undo_lock_page.json": "unsupported activity type Lock (in object)",
    "lemmy/activities/voting/undo_dislike_page.json": "unsupported activity type Like (in object)",
    "lemmy/activities/voting/undo_like_note.json": "unsupported activity type Like (in object)",
    "mastodon/activities/undo_like_page.json": "unsupported activity type Like (in object)",
}

Parser = Callable[[Any], Any]


def _fixture_id(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def _parser_for(path: Path, document: dict[str, Any]) -> Parser:
    if document.get("type") in OBJECT_TYPES or "activities" not in path.parts:
        return parse_object
    return parse_activity


def test_all_fixtures_are_collected() -> None:
    assert len(FILES) >= 124


@pytest.mark.parametrize("path", FILES, ids=_fixture_id)
def test_fixture_is_parsed_or_rejected_with_a_reason(path: Path) -> None:
    raw = path.read_bytes()
    document = json.loads(raw)
    parse = _parser_for(path, document)
    expected_rejection = EXPECTED_REJECTIONS.get(_fixture_id(path))

    if document["type"] in ACTIVITY_TYPES | OBJECT_TYPES and expected_rejection is None:
        parsed = parse(raw)
        assert parsed.id == document["id"]
        assert parsed.type == document["type"]
    else:
        with pytest.raises(VocabError) as raised:
            parse(raw)
        assert raised.value.reason
        assert (expected_rejection or "unsupported") in raised.value.reason


@pytest.mark.parametrize("parse", [parse_activity, parse_object])
@pytest.mark.parametrize("path", FILES, ids=_fixture_id)
def test_fixture_in_any_form_never_crashes_either_parser(path: Path, parse: Parser) -> None:
    raw = path.read_bytes()
    for data in (raw, raw.decode(), json.loads(raw)):
        _parse_or_reason(parse, data)


HOSTILE_VALUES: list[Any] = [
    None,
    0,
    -1,
    10**40,
    1.5e308,
    True,
    "",
    "javascript:alert(1)",
    "https://",
    [],
    [None],
    [1, "https://x.example/a"],
    {},
    {"id": 5},
    {"type": "Note"},
    {"type": ["Person", 7], "id": "https://x.example/u"},
]


@pytest.mark.parametrize("path", FILES, ids=_fixture_id)
def test_fixture_with_hostile_field_values_never_crashes(path: Path) -> None:
    document = json.loads(path.read_bytes())
    parse = _parser_for(path, document)
    for target in _mutable_parts(document):
        for key in list(target):
            original = target[key]
            for value in HOSTILE_VALUES:
                target[key] = value
                _parse_or_reason(parse, document)
            del target[key]
            _parse_or_reason(parse, document)
            target[key] = original


def _mutable_parts(document: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [document]
    while isinstance(parts[-1].get("object"), dict):
        parts.append(parts[-1]["object"])
    return parts


def _parse_or_reason(parse: Parser, data: Any) -> None:
    try:
        parse(data)
    except VocabError as error:
        assert error.reason
        assert str(error) == error.reason


# --- Hostile documents ----------------------------------------------------------------------

NOTE_ID = "https://a.example/notes/1"


def note(**fields: Any) -> dict[str, Any]:
    return {"id": NOTE_ID, "type": "Note", "content": "<p>hi</p>", **fields}


def create(obj: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": "https://a.example/activities/1",
        "type": "Create",
        "actor": "https://a.example/users/ann",
        "object": note() if obj is None else obj,
        **fields,
    }


def reason_of(parse: Parser, data: Any) -> str:
    with pytest.raises(VocabError) as raised:
        parse(data)
    return raised.value.reason


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe{", b"{not json", b"", "{", b'{"id": "https://a.example/x",}', "\ud800"],
)
def test_non_json_is_rejected(data: bytes | str) -> None:
    assert "not valid JSON" in reason_of(parse_object, data)


@pytest.mark.parametrize("data", [b"[]", b'[{"id": "https://a.example/x"}]', b"42", b"null", 42])
def test_non_object_documents_are_rejected(data: Any) -> None:
    assert "must be a JSON object" in reason_of(parse_activity, data)


def test_missing_id_is_rejected() -> None:
    document = note()
    del document["id"]

    assert reason_of(parse_object, document) == "id is missing"


def test_missing_id_of_embedded_object_names_its_place() -> None:
    embedded = note()
    del embedded["id"]

    assert reason_of(parse_activity, create(embedded)) == "object.id is missing"


@pytest.mark.parametrize(
    "bad_id",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,hi",
        "ftp://a.example/x",
        "/notes/1",
        "//a.example/notes/1",
        "https://",
        "https://user:secret@a.example/notes/1",
        "https://a.example/notes/1 2",
        "https://a.example/\nnotes",
        "https://a.example:99999/notes",
        "https://[::1/notes",
    ],
)
def test_ids_must_be_absolute_http_urls(bad_id: str) -> None:
    assert reason_of(parse_object, note(id=bad_id)) == "id must be an absolute http(s) URL"


def test_id_must_be_a_string() -> None:
    assert reason_of(parse_object, note(id=5)) == "id must be a URI string, not a number"


def test_overlong_id_is_rejected() -> None:
    long_id = "https://a.example/" + "x" * 2048

    assert "longer than 2048" in reason_of(parse_object, note(id=long_id))


def test_id_of_2048_characters_is_accepted() -> None:
    exact = "https://a.example/" + "x" * (2048 - len("https://a.example/"))

    assert parse_object(note(id=exact)).id == exact


def nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for _ in range(depth - 1):
        document = {"x": document}
    return document


def test_deep_nesting_is_rejected() -> None:
    assert "nested deeper than 10" in reason_of(parse_object, note(extra=nested(10)))


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert parse_object(note(extra=nested(9))).id == NOTE_ID


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000])
def test_pathologically_deep_json_is_rejected(data: bytes) -> None:
    assert reason_of(parse_object, data)


def test_self_referencing_mapping_is_rejected() -> None:
    document = note()
    document["extra"] = document

    assert "nested deeper than 10" in reason_of(parse_object, document)


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": "https://a.example/n", "type": "Note", "x": 1e999}',
        b'{"id": "https://a.example/n", "type": "Note", "x": -1e999}',
        b'{"id": "https://a.example/n", "type": "Note", "x": 1' + b"0" * 5000 + b"}",
    ],
)
def test_out_of_range_numbers_are_rejected(data: bytes) -> None:
    assert "not valid JSON" in reason_of(parse_object, data)


def test_huge_integer_in_a_mapping_is_carried_as_an_int() -> None:
    offer = note(type="MentorshipOffer", capacity=10**5000)

    parsed = parse_object(offer)

    assert isinstance(parsed, Post) and parsed.mentorship is not None
    assert parsed.mentorship.capacity == 10**5000


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": 5}, "type is missing or not a string"),
        ({"type": []}, "type is missing or not a string"),
        ({"type": "Video"}, "unsupported object type Video"),
        ({"type": "Organization"}, "unsupported object type Organization"),
        ({"published": 5}, "published must be a date-time string, not a number"),
        ({"published": "yesterday"}, "published is not an RFC 3339 date-time"),
        ({"updated": "2024-02-30T10:00:00Z"}, "updated is not an RFC 3339 date-time"),
        ({"content": ["a"]}, "content must be a string, not an array"),
        ({"name": {"en": "x"}}, "name must be a string, not an object"),
        ({"contentMap": {"en": 5}}, "contentMap must map language tags to strings"),
        ({"contentMap": "hi"}, "contentMap must map language tags to strings"),
        ({"source": 5}, "source must be an object, not a number"),
        ({"source": {"mediaType": "text/markdown"}}, "source.content is missing"),
        ({"tag": 5}, "tag must hold objects, not a number"),
        ({"tag": {"type": "Hashtag", "href": "javascript:x"}}, "tag.href must be an absolute"),
        ({"attributedTo": 5}, "attributedTo must hold URIs or objects, not a number"),
        ({"attributedTo": ["javascript:alert(1)"]}, "attributedTo must be an absolute http(s)"),
        ({"audience": {"type": "Group"}}, "audience.id is missing"),
        ({"to": [5]}, "to must hold URIs, not a number"),
        ({"cc": "mailto:a@b.example"}, "cc must be an absolute http(s) URL"),
        ({"sensitive": "yes"}, "sensitive must be a boolean, not a string"),
        ({"url": "javascript:alert(1)"}, "url must be an absolute http(s) URL"),
        ({"url": {"type": "Link"}}, "url.href is missing"),
        ({"inReplyTo": ["https://a.example/1", "https://a.example/2"]}, "only one is supported"),
        ({"inReplyTo": 5}, "inReplyTo must be a URI or an object, not a number"),
        ({"license": {"name": "CC-BY-4.0"}}, "license must be a string, not an object"),
        ({"revision": "3"}, "revision must be an integer, not a string"),
        ({"revision": True}, "revision must be an integer, not a boolean"),
        ({"derivedFrom": "ftp://a.example/x"}, "derivedFrom must be an absolute http(s) URL"),
        ({"published": object()}, "published must be a date-time string, not object"),
    ],
)
def test_wrong_field_types_are_rejected(fields: dict[str, Any], reason: str) -> None:
    assert reason in reason_of(parse_object, note(**fields))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "Like"}, "unsupported activity type Like"),
        ({"type": "Note"}, "unsupported activity type Note"),
        ({"actor": 5}, "actor must be a URI or an object, not a number"),
        ({"actor": None}, "actor is missing"),
        ({"actor": []}, "actor is missing"),
        ({"actor": {"type": "Person"}}, "actor.id is missing"),
        ({"actor": ["https://a.example/u/1", "https://a.example/u/2"]}, "actor has 2 values"),
        ({"object": None}, "object is missing"),
        ({"object": 5}, "object must be a URI or an object, not a number"),
        ({"object": ["https://a.example/1", "https://a.example/2"]}, "object has 2 values"),
        ({"object": {"type": "Like", "actor": "https://a.example/u"}}, "activity type Like (in"),
        ({"object": {"type": "Question", "id": NOTE_ID}}, "unsupported object type Question (in"),
        ({"object": "javascript:alert(1)"}, "object must be an absolute http(s) URL"),
        ({"to": {"name": "everyone"}}, "to must hold URIs, not null"),
    ],
)
def test_malformed_activities_are_rejected(fields: dict[str, Any], reason: str) -> None:
    assert reason in reason_of(parse_activity, create(**fields))


def test_nested_errors_say_where() -> None:
    announce = {
        "id": "https://a.example/activities/2",
        "type": "Announce",
        "actor": "https://a.example/c/tea",
        "object": create(note(published="soon")),
    }

    assert reason_of(parse_activity, announce) == ("object.object.published is not an RFC 3339 date-time")


# --- What Kith accepts ------------------------------------------------------------------------

GUIDE = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        "https://a.example/ns",
    ],
    "id": "https://a.example/guides/7",
    "type": "Article",
    "name": "Brewing for a crowd",
    "summary": "Scaling a pot of tea",
    "content": "<p>Warm the pot.</p>",
    "mediaType": "text/html",
    "source": {"content": "Warm the pot.", "mediaType": "text/markdown"},
    "tag": {"type": "Hashtag", "name": "#tea", "href": "https://a.example/tags/tea"},
    "attributedTo": ["https://a.example/u/ann", "https://a.example/c/tea"],
    "audience": "https://a.example/c/tea",
    "to": ["as:Public"],
    "cc": ["https://a.example/c/tea/followers"],
    "url": "https://a.example/guides/7",
    "license": "CC-BY-4.0",
    "slug": "brewing-for-a-crowd",
    "revision": 3,
    "derivedFrom": "https://b.example/guides/2",
    "published": "2025-01-02T03:04:05Z",
    "updated": "2025-01-03T00:00:00.123456+02:00",
}


def test_kith_guide_is_parsed_in_full() -> None:
    guide = parse_object(json.dumps(GUIDE))

    assert guide == Post(
        id="https://a.example/guides/7",
        type="Article",
        name="Brewing for a crowd",
        summary="Scaling a pot of tea",
        content="<p>Warm the pot.</p>",
        source=Source(content="Warm the pot.", media_type="text/markdown"),
        url="https://a.example/guides/7",
        attributed_to=("https://a.example/u/ann", "https://a.example/c/tea"),
        audience=("https://a.example/c/tea",),
        to=(PUBLIC,),
        cc=("https://a.example/c/tea/followers",),
        tags=(Tag(type="Hashtag", name="#tea", href="https://a.example/tags/tea"),),
        published=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated=datetime(2025, 1, 3, 0, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        license="CC-BY-4.0",
        slug="brewing-for-a-crowd",
        revision=3,
        derived_from="https://b.example/guides/2",
    )
    assert guide.is_public
    assert guide.updated is not None and guide.updated.utcoffset() == timedelta(hours=2)


OFFER = {
    "id": "https://a.example/mentorship/offers/3",
    "name": "Pairing on accessibility audits",
    "content": "<p>Two sessions a month.</p>",
    "kith:topics": ["accessibility", "html"],
    "languages": ["en", "de"],
    "format": "one_to_one",
    "kith:capacity": 2,
    "seatsTaken": 1,
    "availability": "Tuesdays",
    "status": "open",
    "attributedTo": "https://a.example/u/ann",
}


@pytest.mark.parametrize("offer_type", ["kith:MentorshipOffer", "MentorshipOffer", ["Note", "kith:MentorshipOffer"]])
def test_mentorship_offer_is_parsed(offer_type: str | list[str]) -> None:
    offer = parse_object({**OFFER, "type": offer_type})

    assert isinstance(offer, Post)
    assert offer.type == "MentorshipOffer"
    assert offer.name == "Pairing on accessibility audits"
    assert offer.mentorship == Mentorship(
        topics=("accessibility", "html"),
        languages=("en", "de"),
        format="one_to_one",
        capacity=2,
        seats_taken=1,
        availability="Tuesdays",
        status="open",
    )


def test_mentorship_terms_are_ignored_on_other_posts() -> None:
    parsed = parse_object({**OFFER, "type": "Note"})

    assert isinstance(parsed, Post) and parsed.mentorship is None


def test_community_group_is_parsed() -> None:
    group = parse_object(
        {
            "id": "https://a.example/c/tea",
            "type": "Group",
            "preferredUsername": "tea",
            "name": "Tea",
            "summary": "All about tea",
            "color": "#2f6f4f",
            "attachment": [
                {"type": "Link", "name": "Wiki", "href": "https://wiki.example/tea"},
                {"type": "PropertyValue", "name": "x", "value": "y"},
            ],
            "icon": [{"type": "Image", "url": "https://a.example/media/tea.png"}],
            "inbox": "https://a.example/c/tea/inbox",
            "outbox": "https://a.example/c/tea/outbox",
            "followers": {"id": "https://a.example/c/tea/followers", "type": "Collection"},
            "endpoints": {"sharedInbox": "https://a.example/inbox"},
            "publicKey": {
                "id": "https://a.example/c/tea#main-key",
                "owner": "https://a.example/c/tea",
                "publicKeyPem": "-----BEGIN PUBLIC KEY-----\n...",
            },
        }
    )

    assert isinstance(group, Actor)
    assert group.type == "Group"
    assert group.color == "#2f6f4f"
    assert group.links == (Link(href="https://wiki.example/tea", name="Wiki"),)
    assert group.icon == "https://a.example/media/tea.png"
    assert group.followers == "https://a.example/c/tea/followers"
    assert group.shared_inbox == "https://a.example/inbox"
    assert group.public_key("https://a.example/c/tea#main-key") == PublicKey(
        id="https://a.example/c/tea#main-key",
        owner="https://a.example/c/tea",
        pem="-----BEGIN PUBLIC KEY-----\n...",
    )
    assert group.public_key("https://a.example/c/tea#other-key") is None


def test_tombstone_is_parsed() -> None:
    tombstone = parse_object(
        {
            "id": "https://a.example/guides/7",
            "type": "Tombstone",
            "formerType": "Article",
            "deleted": "2025-02-01T00:00:00Z",
        }
    )

    assert tombstone == Tombstone(
        id="https://a.example/guides/7",
        former_type="Article",
        deleted=datetime(2025, 2, 1, tzinfo=UTC),
    )


def test_embedded_actor_is_normalized_to_its_id_and_kept() -> None:
    person = {"id": "https://a.example/users/ann", "type": "Person", "name": "Ann"}

    activity = parse_activity(create(actor=[person]))

    assert activity.actor == "https://a.example/users/ann"
    embedded = activity.embedded["https://a.example/users/ann"]
    assert isinstance(embedded, Actor) and embedded.name == "Ann"


def test_embedded_references_of_unknown_types_keep_only_their_id() -> None:
    attributed = [
        {"type": "Organization", "id": "https://a.example/org"},
        {"type": "Person", "id": "https://a.example/users/ann"},
        "https://a.example/users/ann",
    ]

    post = parse_object(note(attributedTo=attributed))

    assert isinstance(post, Post)
    assert post.attributed_to == ("https://a.example/org", "https://a.example/users/ann")
    assert list(post.embedded) == ["https://a.example/users/ann"]


def test_content_falls_back_to_content_map() -> None:
    document = note(contentMap={"de": "<p>Hallo</p>", "en": "<p>Hello</p>"})
    del document["content"]

    post = parse_object(document)

    assert isinstance(post, Post)
    assert post.content == "<p>Hallo</p>"
    assert post.content_map == {"de": "<p>Hallo</p>", "en": "<p>Hello</p>"}


def test_dates_without_offset_are_taken_as_utc() -> None:
    post = parse_object(note(published="2025-01-02T03:04:05"))

    assert isinstance(post, Post)
    assert post.published == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_public_addressing_aliases_are_normalized() -> None:
    post = parse_object(note(to="Public", cc=["as:Public", PUBLIC]))

    assert isinstance(post, Post)
    assert post.to == (PUBLIC,) and post.cc == (PUBLIC,)


def test_full_iri_types_are_understood() -> None:
    post = parse_object(note(type="https://www.w3.org/ns/activitystreams#Page"))

    assert post.type == "Page"


def test_url_list_prefers_the_html_page() -> None:
    urls = [
        "magnet:?xt=urn:btih:abc",
        {"type": "Link", "mediaType": "video/mp4", "href": "https://a.example/v.mp4"},
        {"type": "Link", "mediaType": "text/html", "href": "https://a.example/watch/1"},
    ]

    post = parse_object(note(url=urls))

    assert isinstance(post, Post) and post.url == "https://a.example/watch/1"


def test_only_hashtags_and_mentions_are_kept_as_tags() -> None:
    tags = [
        {"type": "Emoji", "name": ":tea:", "icon": {"url": "https://a.example/tea.png"}},
        {"type": "Mention", "href": "https://b.example/u/bo", "name": "@bo@b.example"},
        "https://a.example/tags/loose",
    ]

    post = parse_object(note(tag=tags))

    assert isinstance(post, Post)
    assert post.tags == (Tag(type="Mention", name="@bo@b.example", href="https://b.example/u/bo"),)


def test_undo_follow_keeps_the_embedded_follow() -> None:
    follow = {
        "id": "https://a.example/follows/1",
        "type": "Follow",
        "actor": "https://a.example/actor",
        "object": "https://b.example/actor",
    }

    undo = parse_activity(
        {
            "id": "https://a.example/follows/1/undo",
            "type": "Undo",
            "actor": "https://a.example/actor",
            "object": follow,
        }
    )

    assert undo.object_id == "https://a.example/follows/1"
    assert isinstance(undo.object, Activity)
    assert undo.object.type == "Follow"
    assert undo.object.object_id == "https://b.example/actor"
    assert undo.object.object is None


def test_delete_by_uri_has_no_embedded_object() -> None:
    delete = parse_activity(create(type="Delete", obj="https://a.example/guides/7"))

    assert delete.type == "Delete"
    assert delete.object_id == "https://a.example/guides/7"
    assert delete.object is None


# --- moving a community (issue 13) ---


def test_a_groups_other_names_are_read_from_a_real_payload() -> None:
    group = parse_object((FIXTURES / "wordpress" / "objects" / "group.json").read_bytes())
    assert isinstance(group, Actor)
    assert group.also_known_as == ("https://dbzer0.com/?author=0", "https://dbzer0.com", "https://dbzer0.com/")
    assert group.moved_to is None


def test_a_move_is_parsed_as_mastodon_sends_it() -> None:
    # Mastodon's shape (its account moves): actor and object the old actor, target the new one, by id.
    move = parse_activity({
        "@context": "https://www.w3.org/ns/activitystreams", "id": "https://old.example/users/ana#moves/1",
        "type": "Move", "actor": "https://old.example/users/ana", "object": "https://old.example/users/ana",
        "target": "https://new.example/users/ana",
    })  # fmt: skip
    assert move.type == "Move"
    assert move.actor == move.object_id == "https://old.example/users/ana"
    assert move.object is None
    assert move.target == "https://new.example/users/ana"


def test_a_moved_group_and_a_moved_guide_carry_their_terms() -> None:
    group = parse_object({
        "id": "https://a.example/c/river", "type": "Group", "as:movedTo": {"id": "https://b.example/c/river"},
        "alsoKnownAs": "https://a.example/c/brook",
    })  # fmt: skip
    assert isinstance(group, Actor)
    assert group.moved_to == "https://b.example/c/river"
    assert group.also_known_as == ("https://a.example/c/brook",)
    guide = parse_object({
        "id": "https://b.example/guides/1", "type": "Article", "kith:formerUri": "https://a.example/guides/1",
        "alsoKnownAs": ["https://a.example/guides/1"],
    })  # fmt: skip
    assert isinstance(guide, Post)
    assert guide.former_uri == "https://a.example/guides/1"
    assert guide.also_known_as == ("https://a.example/guides/1",)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"type": "Move", "target": ["https://b.example/c/1", "https://c.example/c/1"]}, "target has 2 values"),
        ({"type": "Move", "target": "ftp://b.example/c/1"}, "target must be an absolute http(s) URL"),
        ({"type": "Group", "movedTo": 7}, "movedTo must be a URI or an object"),
        ({"type": "Group", "alsoKnownAs": [{"name": "no id"}]}, "alsoKnownAs.id is missing"),
        ({"type": "Article", "formerUri": "javascript:alert(1)"}, "formerUri must be an absolute http(s) URL"),
    ],
)
def test_move_terms_that_are_not_ids_are_refused(document: dict[str, Any], reason: str) -> None:
    base = {"id": "https://a.example/x/1", "actor": "https://a.example/c/1", "object": "https://a.example/c/1"}
    parse = parse_activity if document["type"] == "Move" else parse_object
    with pytest.raises(VocabError) as raised:
        parse(base | document)
    assert reason in raised.value.reason
