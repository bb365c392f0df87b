"""Who may make an account: the registration modes, invite links and sign-ups waiting for approval.

Its own package because a sign-up spans two domains: the account (server/accounts) and, for a community's
invite, the membership (server/communities); it writes only invites itself and asks those services for the rest.
"""
