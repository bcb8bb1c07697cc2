"""The host faults a lab can suffer, as the CLI and scenarios name them."""

HOST_ACTIONS = {
    "stop": "stop a host (SIGTERM, then SIGKILL after 2s); 'labctl start' brings it back",
    "start": "start a stopped or killed host and restore its routes and impairments",
    "kill": "kill a host at once (SIGKILL); 'labctl start' brings it back",
    "pause": "freeze every process of a host; 'labctl unpause' thaws it",
    "unpause": "thaw a paused host",
    "restart": "restart a host and restore its routes and impairments",
}
