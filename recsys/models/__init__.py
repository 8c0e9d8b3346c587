"""Candidate models: the channels that propose items for the ranker. See README.md in this folder."""

from recsys.models.affinity import UserAffinity
from recsys.models.ann import IVFIndex, recall_at_k
from recsys.models.base import CandidateModel, CandidateRequest, Candidates, HistoryConfig, ModelInfo, Query
from recsys.models.bundle import DEFAULT_CHANNELS, DEFAULT_QUOTAS, CandidateConfig, CandidateModels, CandidatePool
from recsys.models.cooccurrence import CoOccurrence
from recsys.models.data import Catalog, CatalogFields, DataError, Interactions, SignalConfig
from recsys.models.ease import EASE
from recsys.models.embeddings import ItemEmbeddings
from recsys.models.metadata import MetadataJaccard
from recsys.models.popularity import NewItems, PopularityCount, TrendingNow

__all__ = [
    "EASE", "Catalog", "CatalogFields", "CandidateConfig", "CandidateModel", "CandidateModels", "CandidatePool",
    "CandidateRequest", "Candidates", "CoOccurrence", "DEFAULT_CHANNELS", "DEFAULT_QUOTAS", "DataError",
    "HistoryConfig", "IVFIndex", "Interactions", "ItemEmbeddings", "MetadataJaccard", "ModelInfo", "NewItems",
    "PopularityCount", "Query", "SignalConfig", "TrendingNow", "UserAffinity", "recall_at_k",
]
