"""run: the check's own client program on the client host, judged by its exit code and
output; the server's side is read from the target's transcript by the client's address."""

from __future__ import annotations

from dataclasses import dataclass

from ...model.yamlsource import describe
from ..exchange import decode
from ..expectation import Expectation
from ..kind import COMMON_KEYS, CheckKind


@dataclass
class RunOptions:
    command: list[str]
    exit_code: int = 0
    stdout: Expectation | None = None
    stderr: Expectation | None = None


class RunKind(CheckKind):
    name = "run"
    order = 50
    summary = "the check's own client program, run on the from host and judged by its exit code and output"
    keys = {
        "command": "the program: text (run by sh -c) or a list of words",
        "exit_code": "the exit code it must end with (0 unless given)",
        "stdout": "its standard output: exact text, or {contains|regex|json|length: ...}",
        "stderr": "its standard error: exact text, or {contains|regex|json|length: ...}",
    }
    check_keys = tuple(key for key in COMMON_KEYS if key != "load")
    required = ("from",)
    runner = "command"

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        if isinstance(raw, (str, list)):
            raw = {"command": raw}
        body = source.mapping(raw, path, self.keys, required=["command"])
        command = body["command"]
        if isinstance(command, str):
            argv = ["sh", "-c", command]
        elif isinstance(command, list) and command and all(isinstance(p, (str, int)) for p in command):
            argv = [str(part) for part in command]
        else:
            raise source.error(path + ("command",), f"expected a command as text or a list, got {describe(command)}")
        if any("\x00" in word for word in argv):
            raise source.error(path + ("command",), "a command cannot hold a NUL character")
        options = RunOptions(argv)
        if "exit_code" in body:
            options.exit_code = source.integer(body["exit_code"], path + ("exit_code",), 0, 255, "an exit code")
        if "stdout" in body:
            options.stdout = parser.expectation(body["stdout"], path + ("stdout",))
        if "stderr" in body:
            options.stderr = parser.expectation(body["stderr"], path + ("stderr",))
        check.options = options

    def problems(self, check, observation):
        options: RunOptions = check.options
        if observation.get("error"):
            return [f"{observation['error']}: {observation.get('detail', '')}"]
        problems = []
        code = observation.get("exit_code")
        if code != options.exit_code:
            stderr = decode(observation.get("stderr")).decode("utf-8", "replace").strip().splitlines()
            problems.append(f"exit code {code}, expected {options.exit_code}"
                            + (f" (stderr: {stderr[-1][:80]})" if stderr else ""))
        for stream, expectation in (("stdout", options.stdout), ("stderr", options.stderr)):
            if expectation and (mismatch := expectation.mismatch(decode(observation.get(stream)))):
                problems.append(f"{stream} {mismatch}")
        return problems


KIND = RunKind()
