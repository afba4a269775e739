// Package dist is the trainer's data-parallel transport: a rendezvous at
// rank 0 on the Kubeflow PyTorchJob environment contract, a ring of TCP
// links, and ring collectives (all-reduce, broadcast, barrier) that fail fast
// when any peer dies, stalls or closes its connection.
package dist

import (
	"fmt"
	"net"
	"strconv"

	"github.com/aerie-ml/aerie/internal/exitcode"
)

// Environment variables of the contract. The Kubeflow training operator sets
// the first four on every PyTorchJob replica; aerie run render maps the token from the
// Secret aerie-rendezvous.
const (
	EnvMasterAddr = "MASTER_ADDR"
	EnvMasterPort = "MASTER_PORT"
	EnvWorldSize  = "WORLD_SIZE"
	EnvRank       = "RANK"
	EnvToken      = "AERIE_RENDEZVOUS_TOKEN"
)

// Env is one rank's view of the job.
type Env struct {
	MasterAddr string
	MasterPort int
	WorldSize  int
	Rank       int
	Token      string
}

// Master is rank 0's rendezvous address.
func (e Env) Master() string { return net.JoinHostPort(e.MasterAddr, strconv.Itoa(e.MasterPort)) }

// EnvFrom reads the contract through getenv (os.Getenv in production). A
// process without WORLD_SIZE is a job of one: rank 0 of 1. Errors carry
// exitcode.Config and name the variable.
func EnvFrom(getenv func(string) string) (Env, error) {
	ws := getenv(EnvWorldSize)
	if ws == "" {
		return Env{WorldSize: 1}, nil
	}
	atoi := func(name string, min, max int) (int, error) {
		s := getenv(name)
		if s == "" {
			return 0, exitcode.Errorf(exitcode.Config, "environment variable %s is not set (needed with %s=%s)", name, EnvWorldSize, ws)
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < min || v > max {
			return 0, exitcode.Errorf(exitcode.Config, "environment variable %s=%q: want an integer in [%d, %d]", name, s, min, max)
		}
		return v, nil
	}
	var e Env
	var err error
	if e.WorldSize, err = atoi(EnvWorldSize, 1, 1<<16); err != nil {
		return Env{}, err
	}
	if e.Rank, err = atoi(EnvRank, 0, e.WorldSize-1); err != nil {
		return Env{}, err
	}
	if e.WorldSize == 1 {
		return e, nil
	}
	if e.MasterPort, err = atoi(EnvMasterPort, 1, 65535); err != nil {
		return Env{}, err
	}
	if e.MasterAddr = getenv(EnvMasterAddr); e.MasterAddr == "" {
		return Env{}, exitcode.Errorf(exitcode.Config, "environment variable %s is not set (needed with %s=%d)", EnvMasterAddr, EnvWorldSize, e.WorldSize)
	}
	if e.Token = getenv(EnvToken); e.Token == "" {
		return Env{}, exitcode.Errorf(exitcode.Config, "environment variable %s is not set: ranks authenticate each other with it (Secret aerie-rendezvous, key token)", EnvToken)
	}
	return e, nil
}

// Environ renders e as KEY=value pairs, for launchers.
func (e Env) Environ() []string {
	return []string{
		EnvMasterAddr + "=" + e.MasterAddr,
		EnvMasterPort + "=" + strconv.Itoa(e.MasterPort),
		EnvWorldSize + "=" + strconv.Itoa(e.WorldSize),
		EnvRank + "=" + strconv.Itoa(e.Rank),
		EnvToken + "=" + e.Token,
	}
}

func (e Env) String() string {
	return fmt.Sprintf("rank %d of %d (master %s)", e.Rank, e.WorldSize, e.Master())
}
