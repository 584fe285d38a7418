"""The README's curl session, run as written against the demo configuration (`make run`'s):
each command's output must match the comment lines under it (`…` stands for what differs from
run to run, a token say). A README that drifts from what the gateway says fails here."""

from __future__ import annotations

import re
import subprocess

import harness

README = harness.REPO / "README.md"
DEMO_ORIGIN = "http://127.0.0.1:8080"
MARK = "@@tokengate-readme-step@@"


def session_steps() -> list[tuple[str, list[str]]]:
    """The README's first shell block that calls the gateway: (command, expected lines) pairs,
    a command's continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if DEMO_ORIGIN + "/token" in b)
    steps: list[tuple[str, list[str]]] = []
    command = ""
    # Comment lines right under a command (no blank line between) are its expected output;
    # other comments describe the next command.
    under_command = False
    for line in block.splitlines():
        if command.endswith("\\"):
            command = command[:-1] + line.strip()
            steps[-1] = (command, steps[-1][1])
            continue
        if not line.strip():
            under_command = False
            continue
        if line.startswith("#"):
            if under_command:
                steps[-1][1].append(line[2:])
            continue
        command = line
        steps.append((command, []))
        under_command = True
    return steps


def expected_pattern(line: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in line.split("…")))


def test_the_readme_session_says_what_the_gateway_answers(gateway):
    steps = session_steps()
    assert len(steps) >= 4 and any(expected for _, expected in steps), steps
    script = "set -euo pipefail\n" + "".join(
        f"printf '\\n%s\\n' {MARK}\n{command.replace(DEMO_ORIGIN, gateway.url('').rstrip('/'))}\n" for command, _ in steps)
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, (run.stdout, run.stderr)
    outputs = run.stdout.split("\n" + MARK + "\n")[1:]
    assert len(outputs) == len(steps), run.stdout
    for (command, expected), output in zip(steps, outputs):
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        for want in expected:
            assert any(expected_pattern(want).fullmatch(line) for line in lines), (command, want, output)
