"""The shape of ``directories:`` in the config cascade (global.yaml or an account.yaml).

    directories:
      practitioners:
        description: Doctors and nurses of the clinic
        semantic: true                  # embed entries for meaning-based search
        fields:
          name:      {type: text, required: true}
          specialty: {type: keyword, searchable: true}
          languages: {type: list}
          years:     {type: number}
          accepting: {type: bool}

Text fields are searchable by default; keyword, list, number and bool fields are filterable by
default. Text fields cannot be filtered on, numbers and booleans cannot be searched as text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

FieldType = Literal["text", "keyword", "number", "bool", "list"]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
DirectoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]

RESERVED_FIELDS = frozenset({"id"})
MAX_FIELDS = 64


class DirectoryField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    filterable: bool | None = None
    searchable: bool | None = None
    required: bool = False
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _compatible(self) -> DirectoryField:
        if self.type == "text" and self.filterable:
            raise ValueError("text fields are searchable, not filterable; use type keyword")
        if self.type in ("number", "bool") and self.searchable:
            raise ValueError(f"{self.type} fields are filterable, not searchable as text")
        return self

    @property
    def is_filterable(self) -> bool:
        if self.filterable is not None:
            return self.filterable
        return self.type != "text"

    @property
    def is_searchable(self) -> bool:
        if self.searchable is not None:
            return self.searchable
        return self.type == "text"


class DirectoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = Field(default=None, max_length=1000)
    semantic: bool = Field(
        default=False,
        description="Embed each entry's searchable text for semantic and hybrid search "
        "(needs the 'semantic' extra).",
    )
    min_similarity: float = Field(
        default=0.2,
        ge=-1,
        le=1,
        description="Semantic matches below this cosine similarity are left out (with "
        "all-MiniLM-L6-v2, unrelated texts score below ≈0.15, related ones above ≈0.4).",
    )
    fields: dict[FieldName, DirectoryField] = Field(min_length=1, max_length=MAX_FIELDS)

    @model_validator(mode="after")
    def _usable(self) -> DirectoryConfig:
        reserved = RESERVED_FIELDS & set(self.fields)
        if reserved:
            raise ValueError("field name 'id' is reserved for the entry's external id")
        if not any(spec.is_searchable for spec in self.fields.values()):
            raise ValueError(
                "at least one field must be searchable (a text field, or searchable: true)"
            )
        return self

    @property
    def searchable_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.is_searchable]

    @property
    def filterable_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.is_filterable]
