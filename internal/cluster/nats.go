package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pushauth/pushauth/internal/events"
)

// NATSServerBin is where Debian's nats-server package puts the binary.
const NATSServerBin = "/usr/sbin/nats-server"

// natsNode is one nats-server of the cluster.
type natsNode struct {
	*proc
	name            string
	client, cluster int // ports
	monitor         int
}

// NATSCluster is a NATS cluster with JetStream, each node on its own ports
// and store directory.
type NATSCluster struct {
	Nodes []*natsNode
}

// startNATS starts an n-node cluster under dir and waits until every node
// answers its health check with JetStream on.
func startNATS(ctx context.Context, dir string, n int) (*NATSCluster, error) {
	bin := NATSServerBin
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("nats-server")
		if lerr != nil {
			return nil, fmt.Errorf("nats-server is not installed (%s; Debian: apt-get install nats-server)", bin)
		}
		bin = p
	}
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	c := &NATSCluster{}
	for i := range n {
		c.Nodes = append(c.Nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), client: ports[3*i], cluster: ports[3*i+1], monitor: ports[3*i+2]})
	}
	for _, node := range c.Nodes {
		var routes []string
		for _, o := range c.Nodes {
			if o != node {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.cluster))
			}
		}
		store := filepath.Join(dir, "nats-"+node.name)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 2GB
}
`, node.name, node.client, node.monitor, store)
		if n > 1 {
			conf += fmt.Sprintf(`cluster {
  name: pushauth-harness
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, node.cluster, strings.Join(routes, ", "))
		}
		confPath := filepath.Join(dir, "nats-"+node.name+".conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		node.proc = &proc{name: "nats-" + node.name, bin: bin, args: []string{"-c", confPath}, logPath: filepath.Join(dir, "nats-"+node.name+".log")}
	}
	for _, node := range c.Nodes {
		if err := node.start(); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// URL is the comma-separated client URL list of every node.
func (c *NATSCluster) URL() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	return strings.Join(urls, ",")
}

// healthy asks a node's monitoring endpoint whether it is up with
// JetStream (the /healthz check includes JetStream's meta leader and its
// streams being current).
func (n *natsNode) healthy(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("nats %s /healthz: %s", n.name, resp.Status)
	}
	return nil
}

// WaitReady waits until every running node is healthy.
func (c *NATSCluster) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		var errs []error
		for _, n := range c.Nodes {
			if !n.running() {
				return fmt.Errorf("nats %s exited:\n%s", n.name, n.tail(20))
			}
			errs = append(errs, n.healthy(ctx))
		}
		return errors.Join(errs...)
	})
}

// KillNode stops node i with SIGKILL.
func (c *NATSCluster) KillNode(i int) { c.Nodes[i].kill() }

// StartNode starts node i again on its ports and store.
func (c *NATSCluster) StartNode(i int) error { return c.Nodes[i].start() }

// Stop stops every node (SIGTERM: a clean shutdown, as an operator's
// restart of the whole cluster does).
func (c *NATSCluster) Stop() {
	for _, n := range c.Nodes {
		_ = n.signal(syscall.SIGTERM, 30*time.Second)
	}
	for _, n := range c.Nodes {
		n.kill()
	}
}

// Start starts every stopped node.
func (c *NATSCluster) Start() error {
	for _, n := range c.Nodes {
		if !n.running() {
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *NATSCluster) stop() {
	for _, n := range c.Nodes {
		if n.proc != nil {
			n.kill()
		}
	}
}

// PushStream is the JetStream stream of pushauth's push queue.
const PushStream = events.PushStream

// StreamInfo asks the nodes' monitoring endpoints (/jsz) for stream name:
// the node leading it and how many replicas it is configured with.
func (c *NATSCluster) StreamInfo(ctx context.Context, name string) (leader string, replicas int, err error) {
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
				Config struct {
					Replicas int `json:"num_replicas"`
				} `json:"config"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		body, gerr := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/jsz?streams=true&config=true", n.monitor))
		if gerr != nil {
			err = gerr
			continue
		}
		if err = json.Unmarshal([]byte(body), &jsz); err != nil {
			continue
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				if s.Name == name && s.Cluster.Leader != "" {
					return s.Cluster.Leader, s.Config.Replicas, nil
				}
			}
		}
	}
	if err == nil {
		err = fmt.Errorf("no node reports stream %s with a leader", name)
	}
	return "", 0, err
}

// NodeIndex is the index of the node named name, or -1.
func (c *NATSCluster) NodeIndex(name string) int {
	for i, n := range c.Nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}
