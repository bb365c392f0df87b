"""All ORM models; importing this module registers every table on Base.metadata."""

from server.models.accounts import ApiToken, Membership, User
from server.models.communities import Community, CommunityImport, CommunityMovedEntry, CommunityMovePeer
from server.models.federation import Activity, ActorKey, DeletedObject, Delivery, InboxItem, Job, Peer
from server.models.guides import Guide, GuideRevision, GuideUpstream
from server.models.mentorship import MentorshipMessage, MentorshipOffer, MentorshipRequest
from server.models.notifications import Notification
from server.models.oidc import OIDCIdentity
from server.models.registration import Invite
from server.models.sessions import WebSession

__all__ = [
    "Activity",
    "ActorKey",
    "ApiToken",
    "Community",
    "CommunityImport",
    "CommunityMovePeer",
    "CommunityMovedEntry",
    "DeletedObject",
    "Delivery",
    "Guide",
    "GuideRevision",
    "GuideUpstream",
    "InboxItem",
    "Invite",
    "Job",
    "Membership",
    "MentorshipMessage",
    "MentorshipOffer",
    "MentorshipRequest",
    "Notification",
    "OIDCIdentity",
    "Peer",
    "User",
    "WebSession",
]
