package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
)

const selfID = "a5fa7e5d06a5cb239e50c3ce085198e28f3a1b3ff5d39710f118a1f82b87ba13"

type serviceDocker struct {
	DockerAPI
	updated []swarmtypes.ServiceSpec
}

func (serviceDocker) PluginList(context.Context, filters.Args) (types.PluginsListResponse, error) {
	return types.PluginsListResponse{{ID: strings.Repeat("b", 64), Name: "other:latest"}, {ID: selfID, Name: "vault:latest"}}, nil
}

func (serviceDocker) SecretList(_ context.Context, o swarmtypes.SecretListOptions) ([]swarmtypes.Secret, error) {
	if o.Filters.Get("label")[0] != "vault.rotate" {
		return nil, nil
	}
	secret := func(id, driver, rotate string) swarmtypes.Secret {
		s := swarmtypes.Secret{ID: id}
		s.Spec.Name = id
		s.Spec.Labels = map[string]string{"vault.rotate": rotate}
		if driver != "" {
			s.Spec.Driver = &swarmtypes.Driver{Name: driver}
		}
		return s
	}
	return []swarmtypes.Secret{secret("mine", "vault", "true"), secret("tagged", "vault:latest", "1"), secret("off", "vault", "false"),
		secret("other", "other", "true"), secret("native", "", "true")}, nil
}

func (serviceDocker) ServiceList(context.Context, swarmtypes.ServiceListOptions) ([]swarmtypes.Service, error) {
	svc := func(id string, secrets ...string) swarmtypes.Service {
		s := swarmtypes.Service{ID: id}
		s.Spec.Name = id
		s.Spec.TaskTemplate.ContainerSpec = &swarmtypes.ContainerSpec{}
		for _, sec := range secrets {
			s.Spec.TaskTemplate.ContainerSpec.Secrets = append(s.Spec.TaskTemplate.ContainerSpec.Secrets, &swarmtypes.SecretReference{SecretID: sec})
		}
		return s
	}
	updating := svc("updating", "mine")
	updating.UpdateStatus = &swarmtypes.UpdateStatus{State: swarmtypes.UpdateStateUpdating}
	return []swarmtypes.Service{svc("app", "mine", "unrelated"), svc("unrelated", "unrelated"), updating}, nil
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func (serviceDocker) TaskList(_ context.Context, o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
	if o.Filters.Get("desired-state")[0] != "running" {
		return nil, nil
	}
	return []swarmtypes.Task{{Meta: swarmtypes.Meta{CreatedAt: t0.Add(time.Minute)}}, {Meta: swarmtypes.Meta{CreatedAt: t0}}}, nil
}

func (serviceDocker) ServiceInspectWithRaw(_ context.Context, id string, _ swarmtypes.ServiceInspectOptions) (swarmtypes.Service, []byte, error) {
	if id == "gone" {
		return swarmtypes.Service{}, nil, fmt.Errorf("service %s: %w", id, cerrdefs.ErrNotFound)
	}
	s := swarmtypes.Service{ID: id}
	s.Spec.Name = id
	s.Spec.TaskTemplate.ForceUpdate = 4
	switch id {
	case "paused":
		s.UpdateStatus = &swarmtypes.UpdateStatus{State: swarmtypes.UpdateStatePaused, Message: "update paused due to failure"}
	case "forced", "started", "relabelled":
		// Forced a moment ago; its updater started since; a label
		// changed since.
		prev := s.Spec
		prev.TaskTemplate.ForceUpdate = 3
		if id == "relabelled" {
			prev.TaskTemplate.ForceUpdate = 4
		}
		s.PreviousSpec = &prev
		s.UpdatedAt = t0
		if id == "started" {
			s.UpdateStatus = &swarmtypes.UpdateStatus{State: swarmtypes.UpdateStateUpdating}
		}
	}
	return s, nil, nil
}

func (d *serviceDocker) ServiceUpdate(_ context.Context, _ string, _ swarmtypes.Version, spec swarmtypes.ServiceSpec, _ swarmtypes.ServiceUpdateOptions) (swarmtypes.ServiceUpdateResponse, error) {
	d.updated = append(d.updated, spec)
	return swarmtypes.ServiceUpdateResponse{}, nil
}

func TestRotationCalls(t *testing.T) {
	d := &serviceDocker{}
	e := NewEngine(d)
	e.Now = func() time.Time { return t0.Add(time.Second) }
	ctx := context.Background()

	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mountinfo, []byte("78 47 254:0 /var/lib/docker/plugins/"+selfID+"/rootfs / rw - ext4 /dev/vda rw\n"), 0o600)
	selfFiles = []string{mountinfo, "/nonexistent"}
	if name, err := e.PluginName(ctx); name != "vault:latest" || err != nil {
		t.Errorf("PluginName: %q %v", name, err)
	}

	secrets, err := e.RotatingSecrets(ctx, "vault:latest", "vault.rotate")
	var names []string
	for _, s := range secrets {
		names = append(names, s.Name)
	}
	if err != nil || strings.Join(names, ",") != "mine,tagged" {
		t.Errorf("RotatingSecrets: %v %v", names, err)
	}

	services, err := e.ServicesUsing(ctx, []string{"mine"})
	if err != nil || len(services) != 2 || services[0].Name != "app" || !services[0].Oldest.Equal(t0) || !services[0].Settled() || services[1].Settled() {
		t.Errorf("ServicesUsing: %+v %v", services, err)
	}

	var unsettled *UnsettledError
	if err := e.ForceUpdate(ctx, "paused"); !errors.As(err, &unsettled) || unsettled.Service.UpdateMessage == "" || len(d.updated) != 0 {
		t.Errorf("ForceUpdate of a paused service: %v, %d updates", err, len(d.updated))
	}
	if err := e.ForceUpdate(ctx, "gone"); !errors.Is(err, ErrServiceGone) {
		t.Errorf("ForceUpdate of a removed service: %v", err)
	}
	if err := e.ForceUpdate(ctx, "app"); err != nil || len(d.updated) != 1 || d.updated[0].TaskTemplate.ForceUpdate != 5 {
		t.Errorf("ForceUpdate: %+v %v", d.updated, err)
	}
	// Forced a moment ago: swarm cleared the status and its updater has
	// not started, so the service looks settled; it is not forced again.
	if err := e.ForceUpdate(ctx, "forced"); !errors.Is(err, ErrUpdatePending) || len(d.updated) != 1 {
		t.Errorf("ForceUpdate of a service whose forced update has not started: %v, %d updates", err, len(d.updated))
	}
	// Its updater started: rolling, not settled.
	if err := e.ForceUpdate(ctx, "started"); !errors.As(err, &unsettled) || len(d.updated) != 1 {
		t.Errorf("ForceUpdate of a service whose forced update started: %v, %d updates", err, len(d.updated))
	}
	// Forced a while ago, and swarm never started it (no task to
	// replace): forced again.
	e.Now = func() time.Time { return t0.Add(pendingFor) }
	if err := e.ForceUpdate(ctx, "forced"); err != nil || len(d.updated) != 2 {
		t.Errorf("ForceUpdate of a service whose forced update never started: %v, %d updates", err, len(d.updated))
	}
	e.Now = func() time.Time { return t0.Add(time.Second) }
	// Updated since without a restart (a label): its status is cleared
	// too, but nothing is pending. Forced.
	if err := e.ForceUpdate(ctx, "relabelled"); err != nil || len(d.updated) != 3 {
		t.Errorf("ForceUpdate of a service relabelled since its last force: %v, %d updates", err, len(d.updated))
	}
}

// labelDocker lists secrets as the engine does: a secret matches when it
// carries every label of the filter (the engine ANDs them).
type labelDocker struct {
	DockerAPI
	secrets []swarmtypes.Secret
	lists   int
}

func (d *labelDocker) SecretList(_ context.Context, o swarmtypes.SecretListOptions) ([]swarmtypes.Secret, error) {
	d.lists++
	var out []swarmtypes.Secret
	for _, s := range d.secrets {
		all := true
		for _, l := range o.Filters.Get("label") {
			_, ok := s.Spec.Labels[l]
			all = all && ok
		}
		if all {
			out = append(out, s)
		}
	}
	return out, nil
}

// A secret opts into rotation under either label name, the legacy prefix's
// as the request path reads it too, and is rotated once whatever it
// carries.
func TestRotatingSecretsUnderAnyLabel(t *testing.T) {
	const rotate, legacy = "vault.rotate", "dk.almbrand.docker.plugin.secretprovider.vault.rotate"
	secret := func(name, driver string, labels ...string) swarmtypes.Secret {
		s := swarmtypes.Secret{ID: "id-" + name}
		s.Spec.Name, s.Spec.Labels = name, map[string]string{}
		for i := 0; i < len(labels); i += 2 {
			s.Spec.Labels[labels[i]] = labels[i+1]
		}
		s.Spec.Driver = &swarmtypes.Driver{Name: driver}
		return s
	}
	d := &labelDocker{secrets: []swarmtypes.Secret{
		secret("new", "vault", rotate, "true"),
		secret("legacy", "vault", legacy, "true"),
		secret("both", "vault:latest", rotate, "true", legacy, "1"),
		secret("new-only-on", "vault", rotate, "true", legacy, "false"),
		secret("legacy-only-on", "vault", rotate, "false", legacy, "true"),
		secret("off", "vault", rotate, "false", legacy, "false"),
		secret("other-driver", "other", legacy, "true"),
		secret("unlabelled", "vault"),
	}}
	got, err := NewEngine(d).RotatingSecrets(context.Background(), "vault:latest", rotate, legacy)
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := "new,both,new-only-on,legacy,legacy-only-on"; err != nil || strings.Join(names, ",") != want {
		t.Errorf("RotatingSecrets: %v %v, want %s", names, err, want)
	}
	if len(got) == 0 || got[0].ID != "id-new" || got[0].Labels[rotate] != "true" {
		t.Errorf("first secret %+v", got[0])
	}

	d.lists = 0
	if got, err := NewEngine(d).RotatingSecrets(context.Background(), "vault:latest"); got != nil || err != nil || d.lists != 0 {
		t.Errorf("no label: %v %v after %d lists, want none (an unfiltered list is every secret)", got, err, d.lists)
	}
}
