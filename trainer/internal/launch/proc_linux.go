package launch

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts a replica in its own process group, so a terminal's ^C
// reaches the launcher alone and the launcher decides how the ranks stop,
// and has the kernel kill it should the launcher die.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
