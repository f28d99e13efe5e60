"""Fixtures for tests that run real rclpy nodes over Fast DDS."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 environment not active (source env.sh)")
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402


@pytest.fixture
def ros_context() -> Iterator[Context]:
    """A fresh rclpy context (domain and discovery range come from test/conftest.py)."""
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


class RosHarness:
    """Owns nodes and an executor in one context; spins until a condition holds or times out."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes: list[Node] = []

    def node(self, name: str) -> Node:
        node = Node(name, context=self.context)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_until(
        self, condition: Callable[[], bool], timeout_s: float = 10.0, on_tick=None
    ) -> bool:
        """Spin the executor until ``condition()`` is true; ``on_tick`` runs between spins."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if on_tick is not None:
                on_tick()
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()


@pytest.fixture
def ros(ros_context: Context) -> Iterator[RosHarness]:
    harness = RosHarness(ros_context)
    try:
        yield harness
    finally:
        harness.close()


class RunningNode:
    """A node spun by its own executor on a background thread, in its own context."""

    def __init__(self, node_factory: Callable[[Context], Node]) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = node_factory(self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(Exception):  # the executor is shut down under us at teardown
            self.executor.spin()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(5.0)
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def start_refiner():
    """``start_refiner(**params)`` -> RunningNode of a GcfRefinerNode with parameter overrides;
    ``namespace`` (keyword) puts its relative topics there (apart from other tests' nodes)."""
    from rclpy.parameter import Parameter

    from gcf_ros.ros.refiner_node import GcfRefinerNode

    running: list[RunningNode] = []

    def start(namespace: str = "", **params) -> RunningNode:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        r = RunningNode(lambda ctx: GcfRefinerNode(context=ctx, namespace=namespace,
                                                   parameter_overrides=overrides))  # fmt: skip
        running.append(r)
        return r

    yield start
    for r in running:
        r.close()
