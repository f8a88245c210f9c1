// Command billflow runs the API, the worker, migrations and admin commands.
// It parses flags and environment, dials once, and calls run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/billflow/billflow/app"
	"github.com/billflow/billflow/codec"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/tenancy"
)

const usage = `billflow: billing for health and wellness practices

usage:
  billflow api                 serve the HTTP API (HTTP_ADDR)
  billflow worker              run the Temporal worker (task queue "billing")
  billflow migrate             apply database migrations
  billflow practice create --name NAME [--currency usd] [--timezone Area/City] [--email EMAIL]
                               a practice with its own Temporal namespace and data key
  billflow practice rotate-key --id ID
                               give a practice a new payload data key (old payloads still decode)
  billflow keys rewrap         re-wrap every data key with TEMPORAL_ENCRYPTION_KEY (after a master
                               key rotation, the old key in TEMPORAL_ENCRYPTION_OLD_KEYS)
  billflow temporal setup      register billflow's search attributes on TEMPORAL_ADDRESS and finish
                               registering every practice's namespace

configuration comes from the environment; see README.md.`

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], logger); err != nil {
		fmt.Fprintln(os.Stderr, "billflow:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, logger *slog.Logger) error {
	if len(args) == 0 {
		fmt.Println(usage)
		return errors.New("no command given")
	}
	cfg, err := config.Load(nil)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" && args[0] != "temporal" {
		return errors.New("config: DATABASE_URL is required")
	}
	switch args[0] {
	case "api":
		return app.RunAPI(ctx, cfg, logger)
	case "worker":
		return app.RunWorker(ctx, cfg, logger)
	case "migrate":
		st, err := store.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer st.Close()
		applied, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		logger.Info("migrations applied", "versions", applied)
		return nil
	case "practice":
		switch {
		case len(args) >= 2 && args[1] == "create":
			return practiceCreate(ctx, cfg, logger, args[2:])
		case len(args) >= 2 && args[1] == "rotate-key":
			return practiceRotateKey(ctx, cfg, args[2:])
		}
		return errors.New("usage: billflow practice create --name NAME [--currency usd] [--timezone Area/City] | billflow practice rotate-key --id ID")
	case "keys":
		if len(args) < 2 || args[1] != "rewrap" {
			return errors.New("usage: billflow keys rewrap")
		}
		return keysRewrap(ctx, cfg, logger)
	case "temporal":
		if len(args) < 2 || args[1] != "setup" {
			return errors.New("usage: billflow temporal setup")
		}
		return app.SetupTemporal(ctx, cfg, logger)
	case "help", "-h", "--help":
		fmt.Println(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (try billflow help)", args[0])
}

func practiceCreate(ctx context.Context, cfg *config.Config, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("practice create", flag.ContinueOnError)
	name := fs.String("name", "", "practice name (required)")
	currency := fs.String("currency", "usd", "ISO 4217 currency")
	tz := fs.String("timezone", "UTC", "IANA time zone, e.g. America/New_York")
	email := fs.String("email", "", "practice billing email (Reply-To on emails)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, err := app.ValidatePractice(store.NewPractice{Name: *name, Currency: *currency, Timezone: *tz, Email: *email})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := app.Dial(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	defer tc.Close()
	p, key, err := app.CreatePractice(ctx, cfg, st, tc, in)
	if err != nil {
		if p != nil {
			// Made, but its namespace is not ready: print the key (it is
			// shown only once) and say how to finish.
			printJSON(map[string]string{"id": p.ID, "name": p.Name, "temporal_namespace": p.TemporalNamespace, "api_key": key})
		}
		return err
	}
	return printJSON(map[string]string{"id": p.ID, "name": p.Name, "currency": strings.ToLower(p.Currency), "timezone": p.Timezone,
		"temporal_namespace": p.TemporalNamespace, "api_key": key})
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func practiceRotateKey(ctx context.Context, cfg *config.Config, args []string) error {
	fs := flag.NewFlagSet("practice rotate-key", flag.ContinueOnError)
	id := fs.String("id", "", "practice ID (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("--id is required")
	}
	master, st, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	keyID, err := tenancy.RotateDataKey(ctx, st, master, *id)
	if err != nil {
		return err
	}
	return printJSON(map[string]string{"id": *id, "data_key_id": keyID})
}

func keysRewrap(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	master, st, err := openKeyed(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if master == nil {
		return tenancy.ErrNoMasterKey
	}
	n, err := tenancy.Rewrap(ctx, st, master)
	logger.Info("data keys rewrapped", "count", n, "master_key_id", master.CurrentKeyID())
	return err
}

// openKeyed gives the key commands the master codec (nil without
// TEMPORAL_ENCRYPTION_KEY) and the store; the caller closes the store.
func openKeyed(ctx context.Context, cfg *config.Config) (*codec.Codec, *store.Store, error) {
	master, err := app.PayloadCodec(cfg)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	return master, st, nil
}
