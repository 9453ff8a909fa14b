"""Billed usage: the one path that charges credits, runs or submits the work, and refunds.

Every route family (native and each vendor's) calls these. Credits are spent before the work
starts (so two concurrent calls cannot both pass the quota) and given back when the work is
refused, or when a task submission turned out to be a repeat of one already paid for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from faceplane.errors import FaceplaneError
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource, fetch_images
from faceplane.services.limits import refund_credits, spend_credits
from faceplane.services.operations import get_operation, run_operation, validate_options

if TYPE_CHECKING:
    from faceplane.runtime import Runtime
    from faceplane.services.tasks import TaskSpec

T = TypeVar("T")


def spend(rt: Runtime, payer: Principal, costs: dict[str, int]) -> None:
    """Spend the credits of operations {name: count} from every quota of the payer (an app's
    own, and its owner's cap); QUOTA_EXCEEDED spends nothing from any."""
    period_s = rt.settings.quota_period_s
    done: list[tuple[str, int, str, int]] = []
    try:
        for key, quota in payer.quota_buckets():
            for operation, count in costs.items():
                spend_credits(rt.counters, key, quota, period_s, operation, count)
                done.append((key, quota, operation, count))
    except FaceplaneError:
        for key, quota, operation, count in done:
            refund_credits(rt.counters, key, quota, period_s, operation, count)
        raise


def refund(rt: Runtime, payer: Principal, costs: dict[str, int]) -> None:
    """Give back what `spend` took for {name: count}."""
    period_s = rt.settings.quota_period_s
    for key, quota in payer.quota_buckets():
        for operation, count in costs.items():
            if count:
                refund_credits(rt.counters, key, quota, period_s, operation, count)


async def billed(
    rt: Runtime, payer: Principal, costs: dict[str, int], work: Callable[[], Awaitable[T]]
) -> T:
    """Charge `costs`, await `work`, and refund everything if it raises a FaceplaneError."""
    await rt.run_io(spend, rt, payer, costs)
    try:
        return await work()
    except FaceplaneError:
        await rt.run_io(refund, rt, payer, costs)
        raise


async def run_billed(
    rt: Runtime,
    caller: Principal,
    name: str,
    images: dict[str, ImageSource],
    options: dict[str, Any],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run operation `name` synchronously on the inference pool, billed: the one path of every
    synchronous route. `check` may refuse a result (a vendor's stricter contract), which
    refunds it like any other failure."""

    async def work() -> dict[str, Any]:
        validate_options(get_operation(name), options)  # a bad request costs no download
        # URLs are downloaded on the I/O pool first: a slow image server holds an I/O thread
        # (until the fetch deadline), never an inference thread.
        ready = await fetch_images(rt, caller.company_id, images)
        result = await rt.run_blocking(run_operation, rt, name, ready, options, caller.company_id)
        if check is not None:
            check(result.body)
        return dict(result.body)

    return await billed(rt, caller, {name: 1}, work)


async def submit_billed(
    rt: Runtime, caller: Principal, specs: list[TaskSpec], batch: bool = False
) -> tuple[list[dict[str, Any]], list[bool], str | None]:
    """Submit tasks billed: (renderings, created flags, batch id). A spec whose idempotency
    key names a task already submitted returns that task and is not billed again: repeats
    are found before anything is charged, so a retry gets its task back even when the quota
    is used up."""
    from faceplane.services.idempotency import mark_repeats
    from faceplane.services.tasks import submit_batch, submit_task

    specs, repeats = await rt.run_io(mark_repeats, rt, caller.company_id, specs, batch)
    costs = dict(Counter(s.operation for s, rep in zip(specs, repeats, strict=True) if not rep))

    async def work() -> tuple[list[dict[str, Any]], list[bool], str | None]:
        if batch:
            return await rt.run_io(submit_batch, rt, caller.company_id, specs)
        task, created = await rt.run_io(submit_task, rt, caller.company_id, specs[0])
        return [task], [created], None

    tasks, created, batch_id = await billed(rt, caller, costs, work)
    # A submission that raced another one with its key turned out a repeat after all.
    late = dict(
        Counter(
            s.operation
            for s, rep, new in zip(specs, repeats, created, strict=True)
            if not new and not rep
        )
    )
    if late:
        await rt.run_io(refund, rt, caller, late)
    return tasks, created, batch_id
