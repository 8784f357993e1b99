#!/bin/sh
# A stand-in child for agent_process_test.cc: started as `agent_process_child.sh --parent-fd 3`,
# it does what $AGENT_CHILD_MODE says on its fd 3 (the link to the test).
#   lines:  two agent messages, the second split across two writes, then a line that is no
#           message, then a status reply; then it waits for the link to close (reads to EOF)
#           and exits 7.
#   long:   a line longer than agent_link::kMaxLineBytes (4 MiB), then it sleeps until killed.
#   echo:   writes every line it receives to $AGENT_CHILD_OUT, exits 0 on EOF.
#   linger: closes the link and sleeps until killed.
case "$AGENT_CHILD_MODE" in
  lines)
    printf '{"ev":"started","version":1}\n{"ev":"slot","slot":2,' >&3
    sleep 0.05
    printf '"address":"10.0.0.3","held":true,"epoch":9}\nnot json\n' >&3
    printf '{"ev":"status","id":4,"status":{"ok":true}}\n' >&3
    cat <&3 >/dev/null
    exit 7 ;;
  long)
    head -c 4300000 /dev/zero | tr '\0' 'x' >&3 2>/dev/null
    exec sleep 60 ;;
  echo)
    cat <&3 >"$AGENT_CHILD_OUT"
    exit 0 ;;
  linger)
    exec 3>&-
    exec sleep 60 ;;
esac
exit 1
