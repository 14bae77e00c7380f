from kms.cli.main import main

raise SystemExit(main())
