# mailstack.sh - a private mail stack for integration tests, sourced after lib.sh: Dovecot
# (IMAP and LMTP, passwd-file users and a master user) and Postfix (SMTP in, LMTP out to that
# Dovecot), both on free loopback ports, configured and kept under $WORK, stopped on exit.
# How they are set up follows /work/shared/reference/mailstack.md.
#
#   start_dovecot USER...        users USER with password "pw", master user admin/adminpw
#                                (log in as USER*admin); exports IMAP_PORT, LMTP_PORT, DOVECOT_CONF;
#                                DOVECOT_EXTRA_CONF is appended to its configuration
#   stop_dovecot                 stop it early (a test of an unreachable server)
#   start_postfix [DOMAIN...]    smtpd on SMTP_PORT, relaying example.com and DOMAIN... to LMTP;
#                                POSTFIX_EXTRA_CONF (lines) is appended to its main.cf (milters)
#   postfix_add_smtpd NAME=VALUE...  one more smtpd listener (after start_postfix) on a free
#                                port, EXTRA_SMTP_PORT, with -o NAME=VALUE... (its own milter)
#   send_mail FROM TO FILE       submit FILE (an RFC 5322 message) to Postfix
#   wait_delivered USER COUNT [FOLDER]   wait (bounded) until FOLDER (INBOX) holds COUNT messages
#   imap_check ARGS...           tests/tools/imap_check.py against this Dovecot
#
# Every stop command is registered in MAILSTACK_STOPS and run by mailstack_cleanup, which then
# calls lib.sh's cleanup (it replaces lib.sh's EXIT trap, so lib.sh stays as it is).
set -u
MAILSTACK_STOPS=()
IMAP_PORT=""
LMTP_PORT=""
SMTP_PORT=""
EXTRA_SMTP_PORT=""
DOVECOT_CONF=""

# mailstack_cleanup - run the registered stop commands (last registered first), then cleanup.
mailstack_cleanup() {
    local i
    for ((i = ${#MAILSTACK_STOPS[@]} - 1; i >= 0; i--)); do
        eval "${MAILSTACK_STOPS[$i]}" >/dev/null 2>&1
    done
    cleanup
}
trap mailstack_cleanup EXIT

# mailstack_on_exit COMMAND - run COMMAND (a string for eval) when the test exits.
mailstack_on_exit() { MAILSTACK_STOPS+=("$1"); }

# port_in_use PORT - whether something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port - print a loopback port nothing listens on (bounded number of tries).
free_port() {
    local tries port
    for tries in $(seq 1 50); do
        port=$(random_port)
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    fail "no free port found"
}

# dovecot_write_conf DIR - the configuration of the private Dovecot (ports from IMAP_PORT and
# LMTP_PORT) into DIR/dovecot.conf.
dovecot_write_conf() {
    local dir=$1
    cat >"$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
log_path = $WORK/dovecot.log
info_log_path = $WORK/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
mail_location = maildir:$WORK/mail/%u
passdb {
  driver = passwd-file
  args = scheme=plain username_format=%u $dir/masters
  master = yes
  result_success = continue
}
passdb {
  driver = passwd-file
  args = scheme=plain username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$WORK/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
${DOVECOT_IMAP_LOGIN_CONF:-}
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.com
}
${DOVECOT_EXTRA_CONF:-}
EOF
}

# start_dovecot USER... - a private Dovecot serving USER... (password "pw") and the master user
# admin (password "adminpw"); waits until its IMAP port answers.
start_dovecot() {
    local dir="$WORK/dovecot" user tries
    chmod 711 "$WORK" # mktemp's 0700 would keep the mail user out
    mkdir -p "$dir/run" "$dir/state" "$WORK/mail"
    echo "admin:{PLAIN}adminpw::::::" >"$dir/masters"
    : >"$dir/users"
    for user in "$@"; do echo "$user:{PLAIN}pw::::::" >>"$dir/users"; done
    chown -R mail:mail "$WORK/mail"
    DOVECOT_CONF="$dir/dovecot.conf"
    for tries in 1 2 3 4 5; do
        IMAP_PORT=$(free_port)
        LMTP_PORT=$(free_port)
        [ "$IMAP_PORT" = "$LMTP_PORT" ] && continue
        dovecot_write_conf "$dir"
        if dovecot -c "$DOVECOT_CONF" >>"$WORK/dovecot.err" 2>&1; then
            mailstack_on_exit "doveadm -c '$DOVECOT_CONF' stop"
            wait_until 10 "dovecot to listen on $IMAP_PORT" port_in_use "$IMAP_PORT"
            wait_until 10 "dovecot lmtp to listen on $LMTP_PORT" port_in_use "$LMTP_PORT"
            export IMAP_PORT LMTP_PORT DOVECOT_CONF
            return 0
        fi
    done
    fail "cannot start dovecot (see $WORK/dovecot.err and $WORK/dovecot.log)"
}

# stop_dovecot - stop the private Dovecot and wait (bounded) until its IMAP port is closed.
stop_dovecot() {
    doveadm -c "$DOVECOT_CONF" stop >>"$WORK/dovecot.err" 2>&1
    wait_until 10 "dovecot to stop" eval "! port_in_use $IMAP_PORT"
}

# postfix_write_conf DIR DOMAIN... - main.cf and master.cf of the private Postfix in DIR.
postfix_write_conf() {
    local dir=$1 domain transports="" relays=""
    shift
    for domain in example.com "$@"; do
        transports="$transports $domain=lmtp:inet:127.0.0.1:$LMTP_PORT"
        relays="$relays $domain"
    done
    cat >"$dir/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $WORK/postfix-queue
data_directory = $WORK/postfix-data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.invalid
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =$relays
transport_maps = inline:{$(echo "$transports" | sed 's/^ //; s/ /, /g')}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $WORK/maillog
maillog_file_prefixes = $WORK
smtputf8_enable = no
biff = no
${POSTFIX_EXTRA_CONF:-}
EOF
    # the package's master.cf without chroot (no jail to populate), smtpd on the chosen port
    awk -v port="$SMTP_PORT" '
        /^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
        /^[a-z]/ && NF >= 8 && $5 == "y" { $5 = "n" }
        { print }' /etc/postfix/master.cf >"$dir/master.cf"
}

# start_postfix [DOMAIN...] - a private Postfix (after start_dovecot) accepting mail for
# example.com and DOMAIN... on SMTP_PORT and handing it to Dovecot's LMTP.
start_postfix() {
    [ -n "$LMTP_PORT" ] || fail "start_postfix needs start_dovecot first"
    local dir="$WORK/postfix" tries
    chmod 711 "$WORK" # mktemp's 0700 would keep the postfix user out
    mkdir -p "$dir" "$WORK/postfix-queue" "$WORK/postfix-data"
    chown postfix "$WORK/postfix-data"
    for tries in 1 2 3 4 5; do
        SMTP_PORT=$(free_port)
        postfix_write_conf "$dir" "$@"
        # postfix prints its fatal errors only to a terminal: script gives it one
        if script -qc "postfix -c '$dir' start" /dev/null >>"$WORK/postfix.err" 2>&1; then
            mailstack_on_exit "postfix -c '$dir' stop"
            if wait_until_quiet 10 port_in_use "$SMTP_PORT"; then
                export SMTP_PORT
                return 0
            fi
            postfix -c "$dir" stop >>"$WORK/postfix.err" 2>&1
        fi
    done
    fail "cannot start postfix (see $WORK/postfix.err and $WORK/maillog)"
}

# postfix_add_smtpd NAME=VALUE... - one more smtpd listener of the private Postfix (after
# start_postfix) on a free loopback port, with the main.cf parameters NAME overridden for it
# (master.cf -o NAME=VALUE: smtpd_milters=inet:127.0.0.1:PORT gives it its own milter), as a
# second gateway in front of the same Dovecot; its port in EXTRA_SMTP_PORT. A listener that
# cannot bind makes Postfix's master exit: then it is started again without it and another
# port tried.
postfix_add_smtpd() {
    local dir="$WORK/postfix" tries port service override
    for tries in 1 2 3 4 5; do
        port=$(free_port)
        [ "$port" = "$SMTP_PORT" ] && continue
        service="127.0.0.1:$port/inet"
        postconf -c "$dir" -M "$service=127.0.0.1:$port inet n - n - - smtpd" >>"$WORK/postfix.err" 2>&1 ||
            fail "postconf cannot add the listener $service"
        for override in "$@"; do
            postconf -c "$dir" -P "$service/$override" >>"$WORK/postfix.err" 2>&1 ||
                fail "postconf cannot set $override on $service"
        done
        script -qc "postfix -c '$dir' reload" /dev/null >>"$WORK/postfix.err" 2>&1
        if wait_until_quiet 10 port_in_use "$port"; then
            EXTRA_SMTP_PORT=$port
            export EXTRA_SMTP_PORT
            return 0
        fi
        postconf -c "$dir" -MX "$service" >>"$WORK/postfix.err" 2>&1
        postfix -c "$dir" status >/dev/null 2>&1 ||
            script -qc "postfix -c '$dir' start" /dev/null >>"$WORK/postfix.err" 2>&1
        wait_until_quiet 10 port_in_use "$SMTP_PORT" || fail "postfix did not come back on $SMTP_PORT"
    done
    fail "cannot add an smtpd listener to postfix (see $WORK/postfix.err and $WORK/maillog)"
}

# wait_until_quiet SECONDS COMMAND... - like wait_until but returns 1 at the deadline instead
# of failing the test.
wait_until_quiet() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

# send_mail FROM TO FILE - submit FILE to the private Postfix (envelope FROM, TO).
send_mail() {
    python3 - "$SMTP_PORT" "$1" "$2" "$3" <<'EOF' || fail "send_mail $2 $3 refused"
import smtplib, sys
port, sender, rcpt, path = sys.argv[1:5]
with open(path, "rb") as f:
    data = f.read()
with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
    s.sendmail(sender, [rcpt], data)
EOF
}

# dovecot_profile NAME [LINE...] - a [profile NAME] section that reaches the private Dovecot as
# its master user admin (its password written to $WORK/imap.secret), forwarding through the
# private Postfix when one runs; then LINE... ("key = value") as given.
dovecot_profile() {
    local name=$1
    shift
    echo adminpw >"$WORK/imap.secret"
    printf '[profile %s]\ntype = imap\nurl = imap://127.0.0.1:%s\nusername = admin\npassword_file = %s\n' \
        "$name" "$IMAP_PORT" "$WORK/imap.secret"
    printf 'login = master\ntls_verify = no\n'
    [ -n "$SMTP_PORT" ] && printf 'smtp_url = smtp://127.0.0.1:%s\n' "$SMTP_PORT"
    [ "$#" -gt 0 ] && printf '%s\n' "$@"
    return 0
}

# imap_check ARGS... - the IMAP checking tool against the private Dovecot as the master user.
imap_check() {
    python3 "$ROOT/tests/tools/imap_check.py" --port "$IMAP_PORT" --master admin --master-password adminpw "$@"
}

# wait_delivered USER COUNT [FOLDER] - wait (bounded) until USER's FOLDER holds COUNT messages.
wait_delivered() {
    local user=$1 count=$2 folder=${3:-INBOX}
    wait_until 20 "$count message(s) in $user's $folder" imap_check --user "$user" count-is "$folder" "$count"
}
