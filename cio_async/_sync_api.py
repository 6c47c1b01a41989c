"""Typed blocking counterparts of ``client.v1``, ``client.v2`` and ``client.app`` for
the synchronous ``CustomerIO``: the same methods and signatures, each run on the
client's loop thread and waited for (``app.send_nowait`` and the lookups that return
async iterators excepted: see their docstrings)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from ._client import AsyncCustomerIO
    from ._config import AppConfig, RetryPolicy
    from ._model import Operation, PersonRef, RelationshipRef
    from .app._api import LookupIdType
    from .app._messages import SendResult, TransactionalMessage
    from .app._people import PersonAttributes, PersonIdentifiers, Segment
    from .track._api import AccountRegion, BatchResult, IdType

__all__ = ["OnLoop", "SyncAppAPI", "SyncTrackV1", "SyncTrackV2", "future_of"]

T = TypeVar("T")


class OnLoop(Protocol):
    """Run ``fn(client)`` on the loop thread and return its result; with ``wait`` (the
    default) an awaitable result is awaited there and an async iterator collected."""

    def __call__(self, fn: Callable[[AsyncCustomerIO], Any], *, wait: bool = True) -> Any: ...


def future_of(fut: asyncio.Future[T]) -> concurrent.futures.Future[T]:
    """A thread-safe ``concurrent.futures.Future`` settled like ``fut`` (call on the
    loop thread)."""
    out: concurrent.futures.Future[T] = concurrent.futures.Future()

    def copy(done: asyncio.Future[T]) -> None:
        if done.cancelled():
            out.cancel()
        elif (exc := done.exception()) is not None:
            out.set_exception(exc)
        else:
            out.set_result(done.result())

    fut.add_done_callback(copy)
    return out


class SyncTrackV1:
    """``client.v1`` of the blocking ``CustomerIO``: the methods of ``TrackV1``, each
    run on the client's loop thread and waited for."""

    def __init__(self, on_loop: OnLoop) -> None:
        self._on_loop = on_loop

    def add_device(
        self,
        person: PersonRef,
        token: str,
        platform: str,
        *,
        last_used: object = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Blocking ``TrackV1.add_device``."""
        self._on_loop(
            lambda c: c.v1.add_device(
                person, token, platform, last_used=last_used, attributes=attributes
            )
        )

    def add_to_segment(
        self, segment_id: int, ids: Iterable[str | int], *, id_type: IdType = "id"
    ) -> int:
        """Blocking ``TrackV1.add_to_segment``."""
        result: int = self._on_loop(lambda c: c.v1.add_to_segment(segment_id, ids, id_type=id_type))
        return result

    def delete(self, person: PersonRef) -> None:
        """Blocking ``TrackV1.delete``."""
        self._on_loop(lambda c: c.v1.delete(person))

    def delete_device(self, person: PersonRef, token: str) -> None:
        """Blocking ``TrackV1.delete_device``."""
        self._on_loop(lambda c: c.v1.delete_device(person, token))

    def get_region(self) -> AccountRegion:
        """Blocking ``TrackV1.get_region``."""
        result: AccountRegion = self._on_loop(lambda c: c.v1.get_region())
        return result

    def identify(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        update_only: bool = False,
        timestamp: object = None,
        subscription_preferences: Mapping[str, Any] | None = None,
        relationships: Iterable[RelationshipRef] | None = None,
        relationships_action: Literal[
            "add_relationships", "delete_relationships"
        ] = "add_relationships",
    ) -> None:
        """Blocking ``TrackV1.identify``."""
        self._on_loop(
            lambda c: c.v1.identify(
                person,
                attributes,
                update_only=update_only,
                timestamp=timestamp,
                subscription_preferences=subscription_preferences,
                relationships=relationships,
                relationships_action=relationships_action,
            )
        )

    def merge(self, primary: PersonRef, secondary: PersonRef) -> None:
        """Blocking ``TrackV1.merge``."""
        self._on_loop(lambda c: c.v1.merge(primary, secondary))

    def page(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Blocking ``TrackV1.page``."""
        result: str = self._on_loop(
            lambda c: c.v1.page(person, url, data, id=id, timestamp=timestamp)
        )
        return result

    def remove_from_segment(
        self, segment_id: int, ids: Iterable[str | int], *, id_type: IdType = "id"
    ) -> int:
        """Blocking ``TrackV1.remove_from_segment``."""
        result: int = self._on_loop(
            lambda c: c.v1.remove_from_segment(segment_id, ids, id_type=id_type)
        )
        return result

    def report_metric(
        self,
        delivery_id: str,
        metric: str,
        *,
        timestamp: object = None,
        recipient: str | None = None,
        reason: str | None = None,
        href: str | None = None,
        action_name: str | None = None,
        action_value: str | None = None,
    ) -> None:
        """Blocking ``TrackV1.report_metric``."""
        self._on_loop(
            lambda c: c.v1.report_metric(
                delivery_id,
                metric,
                timestamp=timestamp,
                recipient=recipient,
                reason=reason,
                href=href,
                action_name=action_name,
                action_value=action_value,
            )
        )

    def report_push_event(
        self, delivery_id: str, event: str, device_id: str, *, timestamp: object = None
    ) -> None:
        """Blocking ``TrackV1.report_push_event``."""
        self._on_loop(
            lambda c: c.v1.report_push_event(delivery_id, event, device_id, timestamp=timestamp)
        )

    def screen(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Blocking ``TrackV1.screen``."""
        result: str = self._on_loop(
            lambda c: c.v1.screen(person, name, data, id=id, timestamp=timestamp)
        )
        return result

    def submit_form(self, form_id: str, data: Mapping[str, str]) -> None:
        """Blocking ``TrackV1.submit_form``."""
        self._on_loop(lambda c: c.v1.submit_form(form_id, data))

    def suppress(self, person: PersonRef) -> None:
        """Blocking ``TrackV1.suppress``."""
        self._on_loop(lambda c: c.v1.suppress(person))

    def track(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Blocking ``TrackV1.track``."""
        result: str = self._on_loop(
            lambda c: c.v1.track(person, name, data, id=id, timestamp=timestamp)
        )
        return result

    def track_anonymous(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Blocking ``TrackV1.track_anonymous``."""
        result: str = self._on_loop(
            lambda c: c.v1.track_anonymous(
                name, data, anonymous_id=anonymous_id, id=id, timestamp=timestamp
            )
        )
        return result

    def unsubscribe(self, delivery_id: str) -> None:
        """Blocking ``TrackV1.unsubscribe``."""
        self._on_loop(lambda c: c.v1.unsubscribe(delivery_id))

    def unsuppress(self, person: PersonRef) -> None:
        """Blocking ``TrackV1.unsuppress``."""
        self._on_loop(lambda c: c.v1.unsuppress(person))


class SyncTrackV2:
    """``client.v2`` of the blocking ``CustomerIO``: the methods of ``TrackV2``, each
    run on the client's loop thread and waited for."""

    def __init__(self, on_loop: OnLoop) -> None:
        self._on_loop = on_loop

    def batch(self, operations: Sequence[Operation | Mapping[str, Any]]) -> BatchResult:
        """Blocking ``TrackV2.batch``."""
        result: BatchResult = self._on_loop(lambda c: c.v2.batch(operations))
        return result

    def entity(self, operation: Operation | Mapping[str, Any]) -> None:
        """Blocking ``TrackV2.entity``."""
        self._on_loop(lambda c: c.v2.entity(operation))


class SyncAppAPI:
    """``client.app`` of the blocking ``CustomerIO``: the methods of ``AppAPI``, each
    run on the client's loop thread and waited for."""

    def __init__(self, on_loop: OnLoop) -> None:
        self._on_loop = on_loop

    @property
    def config(self) -> AppConfig:
        """The App API configuration."""
        result: AppConfig = self._on_loop(lambda c: c.app.config, wait=False)
        return result

    def cache_clear(self) -> None:
        """Blocking ``AppAPI.cache_clear``."""
        self._on_loop(lambda c: c.app.cache_clear())

    def cache_info(self) -> dict[str, Any]:
        """Blocking ``AppAPI.cache_info``."""
        result: dict[str, Any] = self._on_loop(lambda c: c.app.cache_info())
        return result

    def find_by_email(self, email: str) -> list[PersonIdentifiers]:
        """Blocking ``AppAPI.find_by_email``."""
        result: list[PersonIdentifiers] = self._on_loop(lambda c: c.app.find_by_email(email))
        return result

    def get_attributes(self, person: PersonRef, *, cached: bool = True) -> PersonAttributes | None:
        """Blocking ``AppAPI.get_attributes``."""
        result: PersonAttributes | None = self._on_loop(
            lambda c: c.app.get_attributes(person, cached=cached)
        )
        return result

    def get_attributes_batch(
        self, ids: Iterable[str | int], *, id_type: LookupIdType = "id"
    ) -> list[PersonAttributes]:
        """Blocking ``AppAPI.get_attributes_batch``."""
        result: list[PersonAttributes] = self._on_loop(
            lambda c: c.app.get_attributes_batch(ids, id_type=id_type)
        )
        return result

    def get_segments(self, person: PersonRef, *, cached: bool = True) -> list[Segment]:
        """Blocking ``AppAPI.get_segments``."""
        result: list[Segment] = self._on_loop(lambda c: c.app.get_segments(person, cached=cached))
        return result

    def search_people(
        self, filter: Mapping[str, Any], *, page_size: int = 1000
    ) -> list[PersonIdentifiers]:
        """Everyone matching ``filter``, every page fetched (``AppAPI.search_people``
        is an async iterator; here the pages are collected into one list)."""
        result: list[PersonIdentifiers] = self._on_loop(
            lambda c: c.app.search_people(filter, page_size=page_size)
        )
        return result

    def send(
        self,
        message: TransactionalMessage,
        *,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> SendResult:
        """Blocking ``AppAPI.send``."""
        result: SendResult = self._on_loop(
            lambda c: c.app.send(message, retry_unsafe=retry_unsafe, retry=retry)
        )
        return result

    def send_nowait(
        self,
        message: TransactionalMessage,
        *,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> concurrent.futures.Future[SendResult]:
        """Validate ``message`` now (a ``ValidationError`` raises here), then send it in
        the background without waiting: returns a ``concurrent.futures.Future`` for the
        ``SendResult``. A failure also goes to ``on_error`` and the log, as with
        ``AppAPI.send_nowait``."""
        result: concurrent.futures.Future[SendResult] = self._on_loop(
            lambda c: future_of(c.app.send_nowait(message, retry_unsafe=retry_unsafe, retry=retry)),
            wait=False,
        )
        return result

    def trigger_broadcast(
        self,
        broadcast_id: int,
        *,
        data: Mapping[str, Any] | None = None,
        recipients: Mapping[str, Any] | None = None,
        ids: Iterable[str | int] | None = None,
        emails: Iterable[str] | None = None,
        per_user_data: Iterable[Mapping[str, Any]] | None = None,
        data_file_url: str | None = None,
        id_ignore_missing: bool | None = None,
        email_ignore_missing: bool | None = None,
        email_add_duplicates: bool | None = None,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Blocking ``AppAPI.trigger_broadcast``."""
        result: int = self._on_loop(
            lambda c: c.app.trigger_broadcast(
                broadcast_id,
                data=data,
                recipients=recipients,
                ids=ids,
                emails=emails,
                per_user_data=per_user_data,
                data_file_url=data_file_url,
                id_ignore_missing=id_ignore_missing,
                email_ignore_missing=email_ignore_missing,
                email_add_duplicates=email_add_duplicates,
                retry_unsafe=retry_unsafe,
                retry=retry,
            )
        )
        return result
