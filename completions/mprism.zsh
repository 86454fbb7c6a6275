#compdef mprism
# zsh completion for mprism. Install: put this file as `_mprism` in a directory on $fpath, or
#   mprism completion zsh > "${fpath[1]}/_mprism"

_mprism() {
    local -a commands daemons infra
    commands=(
        'init:find/install infra binaries, create MPRISM_HOME, streams, databases, tables'
        'start:start local infra and the daemons in dependency order'
        'stop:stop daemons and local infra in reverse order'
        'restart:stop then start'
        'status:one row per process'
        'tui:interactive dashboard'
        'health:infra and daemon health, data freshness'
        'integrity:hot vs cold counts, duplicates, gaps, lag'
        'repair:re-copy windows, remove duplicates, clear stale locks, restart dead daemons'
        'backfill:history from the venues REST in stages, resumable'
        'diagnose:ports, processes, locks, versions, disk, config, recent errors'
        'clean:remove stale pid/lock files and temp files'
        'logs:show a process log'
        'alerts:open alerts of the brain; ack ID acknowledges one'
        'tasks:the brain tasks: list, run, enable, disable'
        'completion:print a shell completion script'
        'help:show help for a command'
    )
    daemons=(simulator storage storage-2 storage-3 storage-4 replication collector brain)
    infra=(nats nats-2 nats-3 clickhouse-hot clickhouse-cold redis postgres)

    local curcontext="$curcontext" state line
    typeset -A opt_args

    _arguments -C \
        '(- *)'{-h,--help}'[show help]' \
        '(- *)'{-V,--version}'[show the version]' \
        '1: :->command' \
        '*:: :->args' && return 0

    case $state in
        command)
            _describe -t commands 'mprism command' commands
            ;;
        args)
            case $line[1] in
                init)
                    _arguments '--install[install missing server binaries]' '--yes[do not ask before installing]' \
                        '--binaries-only[only find or install the server binaries]' '--json[print JSON]' ;;
                start)
                    _arguments '--simulate[also start the exchange simulator]' '--with-prometheus[also run a local Prometheus]' '--json[print JSON]' \
                        "*:name:(${daemons[*]} ${infra[*]})" ;;
                stop)
                    _arguments '--timeout[seconds before SIGKILL]:seconds:' '--json[print JSON]' \
                        "*:name:(${daemons[*]} ${infra[*]})" ;;
                restart)
                    _arguments '--simulate[start with the exchange simulator]' '--timeout[seconds before SIGKILL]:seconds:' \
                        "*:name:(${daemons[*]} ${infra[*]})" ;;
                status|health|diagnose)
                    _arguments '--json[print JSON]' ;;
                integrity)
                    _arguments '--json[print JSON]' '--since[how far back to check]:duration:(15m 1h 6h 24h 7d)' \
                        '--verbose[list every window, not only the bad ones]' ;;
                repair)
                    _arguments '--dry-run[only say what would be done]' \
                        '--since[how far back to look for broken windows]:duration:(1h 6h 24h 7d)' '--json[print JSON]' ;;
                backfill)
                    _arguments '--since[how far back]:duration:(12h 1d 7d 30d)' \
                        '--types[data types, comma separated]:types:' '--venue[only this venue]:venue:(binance_spot binance_derivatives okx_spot okx_derivatives deribit_derivatives)' \
                        '--trades[trades too, after the other stages]' '--json[print JSON]' ;;
                clean)
                    _arguments '--force[also remove temp files younger than an hour]' \
                        '--dry-run[only list what would be removed]' '--json[print JSON]' ;;
                logs)
                    _arguments '(-f --follow)'{-f,--follow}'[keep printing new lines]' \
                        '(-n --lines)'{-n,--lines}'[number of lines]:lines:' \
                        "1:name:(${daemons[*]} ${infra[*]} supervisor)" ;;
                alerts)
                    _arguments '--all[resolved alerts too]' '--json[print JSON]' '1:subcommand:(ack)' ;;
                tasks)
                    _arguments '--json[print JSON]' '1:subcommand:(list run enable disable)' ;;
                completion)
                    _arguments '1:shell:(bash zsh fish)' ;;
                help)
                    _describe -t commands 'mprism command' commands ;;
            esac
            ;;
    esac
}

if [[ $zsh_eval_context[-1] == loadautoload ]]; then
    _mprism "$@"
else
    compdef _mprism mprism
fi
