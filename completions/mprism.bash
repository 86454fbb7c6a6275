# bash completion for mprism. Install: source this file from ~/.bashrc, or
#   mprism completion bash > /etc/bash_completion.d/mprism

_mprism() {
    local cur prev cmd i
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"

    local commands="init start stop restart status tui health integrity repair backfill diagnose clean logs alerts tasks completion help"
    local daemons="simulator storage storage-2 storage-3 storage-4 replication collector brain"
    local infra="nats nats-2 nats-3 clickhouse-hot clickhouse-cold redis postgres"

    # The subcommand is the first word after `mprism` that is not an option.
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ "${COMP_WORDS[i]}" != -* ]]; then
            cmd="${COMP_WORDS[i]}"
            break
        fi
    done

    if [[ -z "$cmd" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return 0
    fi

    # Options that take a value: offer nothing (or a hint list) for the value itself.
    case "$prev" in
        --timeout|-n|--lines) return 0 ;;
        --since) COMPREPLY=($(compgen -W "15m 1h 6h 24h 7d" -- "$cur")); return 0 ;;
    esac

    local opts="" words=""
    case "$cmd" in
        init)       opts="--install --yes --binaries-only --json" ;;
        start)      opts="--simulate --with-prometheus --json"; words="$daemons $infra" ;;
        stop)       opts="--timeout --json"; words="$daemons $infra" ;;
        restart)    opts="--simulate --timeout"; words="$daemons $infra" ;;
        status)     opts="--json" ;;
        tui)        opts="" ;;
        health)     opts="--json" ;;
        integrity)  opts="--json --since --verbose" ;;
        repair)     opts="--dry-run --since --json" ;;
        backfill)   opts="--since --types --venue --trades --json" ;;
        diagnose)   opts="--json" ;;
        clean)      opts="--force --dry-run --json" ;;
        logs)       opts="-f --follow -n --lines"; words="$daemons $infra supervisor" ;;
        alerts)     opts="--all --json"; words="ack" ;;
        tasks)      opts="--json"; words="list run enable disable" ;;
        completion) words="bash zsh fish" ;;
        help)       words="$commands" ;;
    esac

    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    return 0
}

complete -F _mprism mprism
