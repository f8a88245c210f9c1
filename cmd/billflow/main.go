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
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/store"
)

const usage = `billflow: billing for health and wellness practices

usage:
  billflow api                 serve the HTTP API (HTTP_ADDR)
  billflow worker              run the Temporal worker (task queue "billing")
  billflow migrate             apply database migrations
  billflow practice create --name NAME [--currency usd] [--timezone Area/City] [--email EMAIL]
  billflow temporal setup      register billflow's search attributes on TEMPORAL_ADDRESS

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
		if len(args) < 2 || args[1] != "create" {
			return errors.New("usage: billflow practice create --name NAME [--currency usd] [--timezone Area/City]")
		}
		return practiceCreate(ctx, cfg, args[2:])
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

func practiceCreate(ctx context.Context, cfg *config.Config, args []string) error {
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	p, key, err := st.CreatePractice(ctx, in)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]string{"id": p.ID, "name": p.Name, "currency": strings.ToLower(p.Currency), "timezone": p.Timezone, "api_key": key})
}
