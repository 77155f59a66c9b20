"""The ground every layer stands on: settings, logs, the process's memory policy, ports, and secrets
kept out of output. It imports no other coex package, so any of them may import it."""
