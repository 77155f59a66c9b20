"""The Graph API client of onboarding (graph/client.py) and its errors (graph/errors.py)."""

from graph.client import SYNC_TYPES, GraphClient, PhoneInfo, SyncType
from graph.errors import GraphError

__all__ = ["SYNC_TYPES", "GraphClient", "GraphError", "PhoneInfo", "SyncType"]
