"""qgjob's GitHub App: a sans-I/O core plus one async REST client.

Pure (no I/O, `now` passed in):
    signatures  X-Hub-Signature-256 check          events     deliveries → typed events
    routing     register("pull_request", action=…) config     qgjob.toml → RepoConfig
    globs       `**` path globs                     discovery  spec paths from git trees
    auth        app JWT, token cache                summary    a run on one target
    checks      check-run request bodies            markdown   their titles, summaries, tables
    responses   HTTP answers → values or errors     errors     the exception tree
    fields      typed reads of JSON payload fields
I/O:
    client      GitHubClient (httpx): installations, tokens, contents, trees, check runs, tarballs
"""
