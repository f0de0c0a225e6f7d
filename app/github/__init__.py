"""The service side of the GitHub App: webhook inbox, triggers, check-run tracking, outbox.

inbox     deliveries recorded by `POST /github/webhooks`, processed by a loop
handlers  the router: which event starts what
triggers  config → discovery → a run and its queued check runs (or why not)
tracker   job state changes → check-run renders, owed to GitHub through the outbox
reports   a run's jobs on one target → the `TargetRun` that `github_app` renders
outbox    the loop that sends owed writes: serial and paced per installation
service   `GitHubApp`, what the lifespan builds when the App is configured
"""
