# fish completion for mprism. Install:
#   mprism completion fish > ~/.config/fish/completions/mprism.fish

set -l commands init start stop restart status tui health integrity repair backfill diagnose clean logs alerts tasks completion help
set -l daemons simulator storage storage-2 storage-3 storage-4 replication collector brain
set -l infra nats nats-2 nats-3 clickhouse-hot clickhouse-cold redis postgres

complete -c mprism -f
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -s h -l help -d 'Show help'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -s V -l version -d 'Show the version'

complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a init -d 'Find/install infra, create home, streams, tables'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a start -d 'Start infra and daemons'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a stop -d 'Stop daemons and infra'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a restart -d 'Stop then start'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a status -d 'One row per process'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a tui -d 'Interactive dashboard'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a health -d 'Infra and daemon health, freshness'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a integrity -d 'Hot vs cold counts, duplicates, gaps, lag'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a repair -d 'Re-copy windows, dedupe, clear stale locks'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a backfill -d "History from the venues' REST in stages, resumable"
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a diagnose -d 'Ports, processes, locks, versions, errors'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a clean -d 'Remove stale pid/lock and temp files'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a logs -d 'Show a process log'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a alerts -d "The brain's open alerts; ack ID acknowledges one"
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a tasks -d "The brain's tasks: list, run, enable, disable"
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a completion -d 'Print a shell completion script'
complete -c mprism -n "not __fish_seen_subcommand_from $commands" -a help -d 'Show help for a command'

complete -c mprism -n "__fish_seen_subcommand_from init" -l install -d 'Install missing server binaries'
complete -c mprism -n "__fish_seen_subcommand_from init" -l yes -d 'Do not ask before installing'
complete -c mprism -n "__fish_seen_subcommand_from init" -l binaries-only -d 'Only find or install the server binaries'

complete -c mprism -n "__fish_seen_subcommand_from start stop restart" -a "$daemons $infra"
complete -c mprism -n "__fish_seen_subcommand_from start restart" -l simulate -d 'Also start the exchange simulator'
complete -c mprism -n "__fish_seen_subcommand_from start" -l with-prometheus -d 'Also run a local Prometheus'
complete -c mprism -n "__fish_seen_subcommand_from stop restart" -l timeout -x -d 'Seconds before SIGKILL'

complete -c mprism -n "__fish_seen_subcommand_from init start stop status health integrity repair diagnose clean" -l json -d 'Print JSON'
complete -c mprism -n "__fish_seen_subcommand_from integrity" -l since -x -a '15m 1h 6h 24h 7d' -d 'How far back to check'
complete -c mprism -n "__fish_seen_subcommand_from integrity" -l verbose -d 'List every window, not only the bad ones'
complete -c mprism -n "__fish_seen_subcommand_from repair" -l since -x -a '1h 6h 24h 7d' -d 'How far back to look for broken windows'
complete -c mprism -n "__fish_seen_subcommand_from repair clean" -l dry-run -d 'Only say what would be done'
complete -c mprism -n "__fish_seen_subcommand_from backfill" -l since -x -a '12h 1d 7d 30d' -d 'How far back'
complete -c mprism -n "__fish_seen_subcommand_from backfill" -l types -x -d 'Data types, comma separated'
complete -c mprism -n "__fish_seen_subcommand_from backfill" -l venue -x -a 'binance_spot binance_derivatives okx_spot okx_derivatives deribit_derivatives' -d 'Only this venue'
complete -c mprism -n "__fish_seen_subcommand_from backfill" -l trades -d 'Trades too, after the other stages'
complete -c mprism -n "__fish_seen_subcommand_from backfill" -l json -d 'Print JSON'
complete -c mprism -n "__fish_seen_subcommand_from clean" -l force -d 'Also remove temp files younger than an hour'

complete -c mprism -n "__fish_seen_subcommand_from logs" -a "$daemons $infra supervisor"
complete -c mprism -n "__fish_seen_subcommand_from logs" -s f -l follow -d 'Keep printing new lines'
complete -c mprism -n "__fish_seen_subcommand_from logs" -s n -l lines -x -d 'Number of lines'

complete -c mprism -n "__fish_seen_subcommand_from alerts" -a ack -d 'Acknowledge an alert by id'
complete -c mprism -n "__fish_seen_subcommand_from alerts" -l all -d 'Resolved alerts too'
complete -c mprism -n "__fish_seen_subcommand_from alerts" -l json -d 'Print JSON'
complete -c mprism -n "__fish_seen_subcommand_from tasks" -a 'list run enable disable' -d "The brain's tasks"
complete -c mprism -n "__fish_seen_subcommand_from tasks" -l json -d 'Print JSON'
complete -c mprism -n "__fish_seen_subcommand_from completion" -a 'bash zsh fish'
complete -c mprism -n "__fish_seen_subcommand_from help" -a "$commands"
