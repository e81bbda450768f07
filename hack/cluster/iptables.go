package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// removeIPTablesChains removes the chains the kubelet makes (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT,
// KUBE-FIREWALL and the like) from every table, with the rules that jump to them.
func removeIPTablesChains() []error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for line := range strings.SplitSeq(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && jumpsToKube(f):
					args := append([]string{"-w", "-t", table, "-D"}, f[1:]...)
					if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, out))
					}
				}
			}
			for _, ch := range chains {
				_ = exec.Command(bin, "-w", "-t", table, "-F", ch).Run()
			}
			for _, ch := range chains {
				if out, err := exec.Command(bin, "-w", "-t", table, "-X", ch).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s -t %s -X %s: %w: %s", bin, table, ch, err, out))
				}
			}
		}
	}
	return errs
}

func jumpsToKube(rule []string) bool {
	for i, f := range rule {
		if (f == "-j" || f == "-g") && i+1 < len(rule) && strings.HasPrefix(rule[i+1], "KUBE-") {
			return true
		}
	}
	return false
}
