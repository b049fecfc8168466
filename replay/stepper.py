"""Step through a session event by event: Enter = next, a number = jump to that seq, q = quit.

Each shown event comes with what it changed, field by field (a copy of the state before it, diffed
with the state after). A jump forward folds silently up to the seq before; a jump back starts again
from the nearest snapshot. Input and output are streams, so a test drives it through stdin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from rich.console import Console

from events.schema import Envelope
from oms.state.fold import copy_state, fold, step
from oms.state.model import State
from replay.render import render_diff, render_event
from replay.source import Source
from replay.states import diff_states, state_at

HELP = "Enter = next event, a number = jump to that seq, q = quit"


class Stepper:
    def __init__(self, source: Source, console: Console) -> None:
        self._source = source
        self._console = console
        self.last = source.last_seq()
        self._state, self._envs = self._start_at(0)

    @property
    def seq(self) -> int:
        return self._state.seq

    def _start_at(self, seq: int) -> tuple[State, Iterator[Envelope]]:
        state = state_at(self._source, seq)
        return state, iter(self._source.read(seq + 1))

    def next(self) -> bool:
        """Show the next event and its changes; False at the end of the log."""
        env = next(self._envs, None)
        if env is None:
            self._console.print(f"end of the log (seq {self.last})")
            return False
        before = copy_state(self._state)
        self._state, _ = step(self._state, env)
        render_event(self._console, env)
        changes = diff_states(before, self._state)
        if changes:
            render_diff(self._console, f"changed by #{env.seq}", changes)
        else:
            self._console.print("  (changes nothing)")
        return True

    def jump(self, seq: int) -> bool:
        """Fold up to `seq - 1` without showing, then show `seq`."""
        if not 1 <= seq <= self.last:
            self._console.print(f"no seq {seq}: the log holds 1..{self.last}")
            return True
        if seq <= self.seq:
            self._state, self._envs = self._start_at(seq - 1)
        else:
            self._state = fold(self._take_until(seq - 1), self._state)
        return self.next()

    def _take_until(self, seq: int) -> Iterator[Envelope]:
        if self.seq >= seq:
            return
        for env in self._envs:
            yield env
            if env.seq >= seq:
                return


def run(source: Source, stdin: TextIO, console: Console, start: int | None = None) -> int:
    stepper = Stepper(source, console)
    console.print(f"{stepper.last} events. {HELP}")
    if start is not None:
        stepper.jump(start)
    while True:
        console.print(f"[seq {stepper.seq}/{stepper.last}] > ", end="", markup=False, style="dim")
        line = stdin.readline()
        if not line:  # end of input
            console.print()
            return 0
        answer = line.strip().lower()
        if answer in ("q", "quit", "exit"):
            return 0
        if answer.isdigit():
            stepper.jump(int(answer))
        elif answer == "":
            stepper.next()
        else:
            console.print(HELP)
